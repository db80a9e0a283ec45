"""Benchmark: `pytest -m precheck` on the healthy sandbox against the bare floor.

The floor is pytest with the same imports running twelve trivial checks of the same kinds
(local testinfra host, docker ping, files, commands) with JUnit and self-contained HTML output.
Prints medians of wall time and peak RSS; asserts nothing, since machines are noisy.

    .venv/bin/python bench/precheck.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import OPERATOR_ENV, REPO, private_target

FLOOR_TESTS = """
import docker, psycopg, pydantic, requests, yaml, testinfra, pytest

host = testinfra.get_host("local://")

def test_01_os(): assert host.system_info.type == "linux"
def test_02_docker_ping(): assert docker.DockerClient(version="auto", timeout=3).ping()
def test_03_command(): assert host.exists("git")
def test_04_file(): assert host.file("/proc/meminfo").exists
def test_05_run(): assert host.run("true").rc == 0
def test_06_stat(): assert host.run("stat -f /").rc == 0
def test_07_file(): assert host.file("/etc/hostname").is_file
def test_08_command(): assert host.exists("nginx")
def test_09_run(): assert host.run("git --version").rc == 0
def test_10_file(): assert host.file("/tmp").is_directory
def test_11_command(): assert host.exists("openssl")
def test_12_run(): assert host.run("uname").rc == 0
"""


Command = tuple[list[str], Path]  # argv and working directory
Sample = tuple[float, float]  # wall seconds, peak RSS in MB


def timed(command: list[str], cwd: Path) -> Sample:
    """Wall seconds and peak RSS (MB) of one child process."""
    started = time.perf_counter()
    child = subprocess.Popen(
        command, cwd=cwd, env=OPERATOR_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark run failed: {' '.join(command)}")
    return wall, usage.ru_maxrss / 1024


def interleaved(runs: int, suite: Command, floor: Command) -> tuple[list[Sample], list[Sample]]:
    """Suite and floor runs taken in turns, so that a slow spell of the machine (this VM's
    speed drifts by 20-30% over a minute) falls on both alike rather than on one."""
    timed(*suite), timed(*floor)  # warm-up: page cache, .pyc files
    pairs = [(timed(*suite), timed(*floor)) for _ in range(runs)]
    return [pair[0] for pair in pairs], [pair[1] for pair in pairs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="measured runs per command")
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory(prefix="nexus-bench-") as tmp:
        work = Path(tmp)
        target = private_target(work)
        (work / "floor").mkdir()
        (work / "floor" / "test_floor.py").write_text(FLOOR_TESTS)
        python = sys.executable
        suite = [python, "-m", "pytest", "-q", "-m", "precheck", f"--target={target}",
                 f"--reports-dir={work / 'reports'}"]  # fmt: skip
        floor = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_floor.py",
                 f"--junitxml={work / 'floor.xml'}", f"--html={work / 'floor.html'}",
                 "--self-contained-html"]  # fmt: skip
        suite_samples, floor_samples = interleaved(runs, (suite, REPO), (floor, work / "floor"))
        compose = shutil.which("docker-compose")  # Compose v1, where it is installed
        compose_wall = (
            [timed([compose, "version", "--short"], work)[0] for _ in range(runs)]
            if compose
            else []
        )
    suite_wall, suite_rss = medians(suite_samples)
    floor_wall, floor_rss = medians(floor_samples)
    ratios = [s[0] / f[0] for s, f in zip(suite_samples, floor_samples, strict=True)]
    print(f"runs per command: {runs} (after one warm-up, taken in turns), {os.cpu_count()} cores")
    print(f"pytest -m precheck : median {suite_wall:.3f} s, peak RSS {suite_rss:.0f} MB")
    print(f"bare floor (12)    : median {floor_wall:.3f} s, peak RSS {floor_rss:.0f} MB")
    print(f"ratio to floor     : {suite_wall / floor_wall:.2f}x of the medians, "
          f"{statistics.median(ratios):.2f}x median of the paired runs")  # fmt: skip
    print("targets            : <= 1.5 s, <= 1.2x floor, <= 120 MB")
    # Not part of the targets: the one fact that bounds the suite here. Compose v1 is a Python
    # program; the suite starts it while pytest starts and waits for it before the first test.
    if compose_wall:
        print(f"docker-compose alone: median {statistics.median(compose_wall):.3f} s "
              "(`version --short`, the DOCKER precheck's slowest fact)")  # fmt: skip


def medians(samples: list[Sample]) -> Sample:
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


if __name__ == "__main__":
    main()
