"""Benchmark: `pytest -m precheck --target=fleet` on 1, 4, 8 and 32 API nodes of the sandbox.

For each size the sandbox fleet is brought to that many nodes (`sandbox/fleet.sh up N`), then
the prechecks run ``--runs`` times as an operator's host runs them. Prints the median wall time,
its ratio to one node, and the deployer's peak RSS; asserts nothing (machines are noisy).
Targets (issue 13): 8 nodes <= 2.5x one node, 32 nodes <= 5x, peak RSS <= 250 MB at 32.

    .venv/bin/python bench/fleet.py [--runs 5] [--sizes 1,4,8,32] [--leave 4]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from common import REPO
from precheck import timed


def fleet_target(work: Path) -> Path:
    """The fleet profile with its audit directory under ``work``: the benchmark leaves no logs."""
    profile = yaml.safe_load((REPO / "pfs/targets/fleet.yaml").read_text(encoding="utf-8"))
    profile["audit"]["dir"] = str(work / "audit")
    target = work / "fleet.yaml"
    target.write_text(yaml.safe_dump(profile), encoding="utf-8")
    return target


def bring_fleet_to(nodes: int) -> None:
    done = subprocess.run(
        ["bash", str(REPO / "sandbox/fleet.sh"), "up", str(nodes)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"sandbox/fleet.sh up {nodes} failed:\n{done.stdout}{done.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="1,4,8,32")
    parser.add_argument("--leave", type=int, default=4, help="nodes left running at the end")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="nexus-bench-fleet-") as work:
        target = fleet_target(Path(work))
        command = [sys.executable, "-m", "pytest", "-m", "precheck", f"--target={target}",
                   f"--reports-dir={work}/reports", "-q", "-p", "no:cacheprovider"]  # fmt: skip
        rows = []
        for nodes in sizes:
            bring_fleet_to(nodes)
            timed(command, REPO)  # a first run warms caches and ssh host keys: not counted
            samples = [timed(command, REPO) for _ in range(args.runs)]
            wall = statistics.median(s[0] for s in samples)
            rss = max(s[1] for s in samples)
            rows.append((nodes, wall, rss))
            print(f"{nodes:>3} nodes: median {wall:.2f} s, peak RSS {rss:.0f} MB", flush=True)
        bring_fleet_to(args.leave)
    one = rows[0][1]
    print(f"\nprechecks on a fleet, {args.runs} runs each (median; ratio to {rows[0][0]} node)")
    print(" nodes  median s  x one node  peak RSS MB")
    for nodes, wall, rss in rows:
        print(f"{nodes:>6}  {wall:>8.2f}  {wall / one:>10.2f}  {rss:>11.0f}")


if __name__ == "__main__":
    main()
