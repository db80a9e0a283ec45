"""Slow read-only probes started early, so a precheck finds their answer waiting.

Docker Compose v1 is a Python program that takes about 0.6 s just to print its version. Started
while pytest is still importing the suite (``start_early``, from the options entry point) or
else at session start, it overlaps that work instead of adding its whole time to the DOCKER
precheck. Only facts are fetched early; judging them stays with the precheck.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest
import testinfra
import yaml

from nexus_deploy import yamlfile
from nexus_deploy.facts.host import compose_version
from nexus_deploy.profile import TARGETS_DIR, resolve_target_path


class Prefetch:
    """Named background calls; ``result`` runs the call itself if it was never started."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="nexus-prefetch")
        self._futures: dict[str, Future[Any]] = {}

    def start(self, name: str, call: Callable[..., Any], *args: Any) -> None:
        self._futures[name] = self._pool.submit(call, *args)

    def started(self, name: str) -> bool:
        return name in self._futures

    def result(self, name: str, call: Callable[..., Any], *args: Any) -> Any:
        future = self._futures.pop(name, None)
        return future.result() if future is not None else call(*args)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


PREFETCH_KEY = pytest.StashKey[Prefetch]()


def compose_probe(host_spec: str) -> str | None:
    return compose_version(testinfra.get_host(host_spec))


def start_early(config: pytest.Config) -> None:
    """Start the Compose probe before conftest.py is imported, if this is the deployment suite."""
    root = config.rootpath
    if not (root / TARGETS_DIR).is_dir():
        return  # some other pytest run in this environment (the deployer's own tests, say)
    path = resolve_target_path(config.known_args_namespace.nexus_target, root)
    try:
        raw = yamlfile.load(path.read_text(encoding="utf-8"))
        host_spec = str(raw.get("host", "local://"))
    except (OSError, ValueError, AttributeError, yaml.YAMLError):
        return  # the profile is read, checked and if need be refused properly later
    prefetch = Prefetch()
    prefetch.start("compose", compose_probe, host_spec)
    config.stash[PREFETCH_KEY] = prefetch
