"""SIGTERM and SIGHUP end a run the way Ctrl-C does: a `kill`, a CI job cancelled or an ssh
session dropped still leaves closing audit lines, a rollback script marked, the lock released."""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType

ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"{signal.Signals(signum).name} received")


def end_like_ctrl_c() -> Callable[[], None]:
    """Make SIGTERM and SIGHUP raise KeyboardInterrupt; return what puts the old handlers back."""
    previous = {sig: signal.signal(sig, _interrupt) for sig in ENDING_SIGNALS}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore
