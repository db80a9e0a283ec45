"""Slow read-only probes started at session start, so a precheck finds their answer waiting.

Docker Compose v1 is a Python program that takes about 0.6 s just to print its version; run in
the background from the session's start, it overlaps collection and the first prechecks
instead of adding its whole time to the DOCKER precheck.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class Prefetch:
    """Named background calls; ``result`` runs the call itself if it was never started."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="nexus-prefetch")
        self._futures: dict[str, Future[Any]] = {}

    def start(self, name: str, call: Callable[..., Any], *args: Any) -> None:
        self._futures[name] = self._pool.submit(call, *args)

    def result(self, name: str, call: Callable[..., Any], *args: Any) -> Any:
        future = self._futures.pop(name, None)
        return future.result() if future is not None else call(*args)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
