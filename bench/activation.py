"""Benchmark: an activation end to end (`pytest --activate phase3 --step N`) and its rollback.

Each round activates one marketplace step change on the sandbox, then runs the rollback script
that round wrote, so the sandbox ends where it started. Prints medians; asserts nothing.

    .venv/bin/python bench/activation.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import psycopg
from common import private_target, timed


def current_step() -> int:
    with psycopg.connect(
        host="127.0.0.1", port=55432, dbname="nexus", user="nexus",
        passfile="/var/lib/nexus-sandbox/pgpass",
    ) as connection:  # fmt: skip
        row = connection.execute(
            "SELECT value::text FROM nexus_feature_flags WHERE key = 'marketplace.step'"
        ).fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    rounds = parser.parse_args().rounds
    activations, rollbacks = [], []
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as tmp:
        work = Path(tmp)
        target = private_target(work)
        for _ in range(rounds + 1):  # the first round warms caches and is not counted
            step = 0 if current_step() == 1 else 1
            activation = timed([sys.executable, "-m", "pytest", "-q", f"--target={target}",
                                f"--reports-dir={work / 'reports'}", "--activate=phase3",
                                f"--step={step}"])  # fmt: skip
            script = max((work / "audit").glob("rollback-*.sh"), key=lambda p: p.stat().st_mtime)
            rollback = timed(["bash", str(script)])
            script.rename(script.with_suffix(".done"))
            activations.append(activation)
            rollbacks.append(rollback)
    print(f"rounds: {rounds} (after one warm-up)")
    print(f"activation end to end : median {statistics.median(activations[1:]):.3f} s "
          "(target <= 2.5 s)")  # fmt: skip
    print(f"rollback script       : median {statistics.median(rollbacks[1:]) * 1000:.0f} ms "
          "(target <= 1 s)")  # fmt: skip


if __name__ == "__main__":
    main()
