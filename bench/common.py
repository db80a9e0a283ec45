"""What both benchmarks share: the operator's environment and a sandbox target of their own."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
# As on an operator's host: Python caches bytecode (some sandboxes set this variable, which
# makes every run recompile and re-rewrite every module, about 0.3 s here).
OPERATOR_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def private_target(work: Path, checkout: Path = REPO) -> Path:
    """The sandbox profile (of ``checkout``: another one may know other fields) with its audit
    directory under ``work``: benchmarks leave no logs."""
    profile = yaml.safe_load((checkout / "pfs/targets/sandbox.yaml").read_text(encoding="utf-8"))
    profile["audit"]["dir"] = str(work / "audit")
    target = work / "target.yaml"
    target.write_text(yaml.safe_dump(profile), encoding="utf-8")
    return target


def timed(command: list[str], cwd: Path = REPO) -> float:
    """Wall seconds of one command run as an operator's host would; a failure ends the bench."""
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=OPERATOR_ENV, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(
            f"failed in {cwd}: {' '.join(command)}\n{done.stdout[-2000:]}{done.stderr}"
        )
    return elapsed
