"""Benchmark: the kill switch in an incident, end to end, with the gateway and nginx down.

Each round opens marketplace step 1 on the healthy sandbox, then times
`nexusctl marketplace disable --phase 3 --emergency REASON` against a profile whose gateway
and nginx endpoints answer nowhere (closed loopback ports): the prechecks run and go red, the
write goes through, verification looks once and leaves the flags off. Prints medians; asserts
nothing.

    .venv/bin/python bench/killswitch.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
from pathlib import Path

import yaml
from common import REPO, private_target, timed

NEXUSCTL = REPO / ".venv" / "bin" / "nexusctl"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens once the probe is closed


def incident_target(work: Path) -> Path:
    """The sandbox profile with the gateway and nginx down, as the deployer sees them."""
    healthy = private_target(work)
    profile = yaml.safe_load(healthy.read_text(encoding="utf-8"))
    direct, nginx = closed_port(), closed_port()
    profile["gateway"]["endpoints"] = [
        {"name": "direct", "url": f"http://127.0.0.1:{direct}"},
        {"name": "nginx", "url": f"https://127.0.0.1:{nginx}"},
    ]
    profile["security"]["tls_endpoint"] = f"127.0.0.1:{nginx}"
    target = work / "incident.yaml"
    target.write_text(yaml.safe_dump(profile), encoding="utf-8")
    return target


def nexusctl(*words: str) -> float:
    return timed([str(NEXUSCTL), *words])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    rounds = parser.parse_args().rounds
    times = []
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as tmp:
        work = Path(tmp)
        healthy, incident = private_target(work), incident_target(work)
        reports = f"--reports-dir={work / 'reports'}"
        enable = ("marketplace", "enable", "--phase", "3", "--step", "1", f"--target={healthy}")
        kill = ("marketplace", "disable", "--phase", "3", "--emergency", "bench")
        for _ in range(rounds + 1):  # the first round warms caches and is not counted
            nexusctl(*enable, reports)
            times.append(nexusctl(*kill, f"--target={incident}", reports))
    print(f"rounds: {rounds} (after one warm-up)")
    print(f"kill switch, gateway and nginx down: median {statistics.median(times[1:]):.3f} s "
          "(target <= 2 s)")  # fmt: skip


if __name__ == "__main__":
    main()
