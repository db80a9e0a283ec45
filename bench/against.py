"""Benchmark: this checkout against another one (the code before a change), in turns.

The other checkout needs its own virtualenv (its package is installed there, as ours is in
.venv), e.g. for the commit before this one:

    git worktree add /tmp/before HEAD~1
    (cd /tmp/before && python3 -m venv .venv && .venv/bin/pip install -q -c constraints.txt -e .)
    .venv/bin/python bench/against.py /tmp/before [--runs 15]

Prints the medians of `pytest -m precheck` and of an activation (`--activate phase3 --step N`:
step 1 here, step 0 there, so that each run changes the flags) for both, and the median of the
paired ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from common import REPO, private_target, timed


def suite(checkout: Path, work: Path, *args: str) -> list[str]:
    python = str(checkout / ".venv" / "bin" / "python")
    return [python, "-m", "pytest", "-q", f"--target={private_target(work, checkout)}",
            f"--reports-dir={work / 'reports'}", *args]  # fmt: skip


def paired(ours: list[float], theirs: list[float]) -> str:
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    return (
        f"this {statistics.median(ours):.3f} s, before {statistics.median(theirs):.3f} s, "
        f"paired ratio {statistics.median(ratios):.3f} (min {min(ratios):.2f}, "
        f"max {max(ratios):.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="the other checkout, with its own .venv")
    parser.add_argument("--runs", type=int, default=15, help="measured runs per command")
    arguments = parser.parse_args()
    other, runs = arguments.other.resolve(), arguments.runs
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as tmp:
        ours_work, their_work = Path(tmp) / "this", Path(tmp) / "before"
        ours_work.mkdir(), their_work.mkdir()
        samples: dict[str, tuple[list[float], list[float]]] = {}
        for label, args in (("precheck", ["-m", "precheck"]), ("activation", [])):
            mine, theirs = [], []
            # Each pair makes one change each: this checkout opens step 1, the other closes it.
            mine_args = args or ["--activate=phase3", "--step=1"]
            their_args = args or ["--activate=phase3", "--step=0"]
            for _ in range(runs + 1):  # the first pair warms caches and is not counted
                mine.append(timed(suite(REPO, ours_work, *mine_args), REPO))
                theirs.append(timed(suite(other, their_work, *their_args), other))
            samples[label] = (mine[1:], theirs[1:])
    print(f"runs per command: {runs} (after one warm-up pair, taken in turns)")
    for label, (mine, theirs) in samples.items():
        print(f"{label:<10}: {paired(mine, theirs)}")


if __name__ == "__main__":
    main()
