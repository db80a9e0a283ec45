"""What the operator asked for: a phase, a step or mode, and how carefully to go about it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, cast

PHASES = ("phase3", "phase4")
MODES = ("global", "founder")
Mode = Literal["global", "founder"]


class RequestError(Exception):
    """An activation request that cannot be carried out as written (a usage error)."""


@dataclass(frozen=True)
class ActivationRequest:
    """A validated ``--activate`` request."""

    phase: Literal["phase3", "phase4"]
    step: int | None = None
    mode: Mode | None = None
    plan_only: bool = False
    force_soak: bool = False
    lock_timeout_s: float = 0.0

    @property
    def summary(self) -> str:
        what = f"step {self.step}" if self.phase == "phase3" else f"mode {self.mode}"
        return f"{self.phase} {what}"


def parse_request(
    phase: str | None,
    step: str | None,
    mode: str | None,
    plan_only: bool,
    force_soak: bool,
    lock_timeout: str | None,
    max_step: int = 4,
) -> ActivationRequest | None:
    """Validate the activation options together; None when no activation was asked for."""
    if phase is None:
        given = (("--step", step), ("--mode", mode), ("--lock-timeout", lock_timeout))
        stray = [name for name, value in given if value is not None]
        stray += [name for name, on in (("--plan", plan_only), ("--force-soak", force_soak)) if on]
        if stray:
            raise RequestError(f"{', '.join(stray)} needs --activate")
        return None
    if phase not in PHASES:
        raise RequestError(f"unknown phase {phase!r}: choose one of {', '.join(PHASES)}")
    timeout = _lock_timeout(lock_timeout)
    if phase == "phase3":
        if mode is not None:
            raise RequestError("--mode is for --activate phase4; phase3 takes --step")
        if step is None:
            raise RequestError(f"--activate phase3 needs --step N (0..{max_step}; 0 turns it off)")
        number = _step(step, max_step)
        return ActivationRequest("phase3", number, None, plan_only, force_soak, timeout)
    if step is not None:
        raise RequestError("--step is for --activate phase3; phase4 takes --mode global|founder")
    chosen = mode or "global"
    if chosen not in MODES:
        raise RequestError(f"unknown mode {chosen!r}: choose one of {', '.join(MODES)}")
    return ActivationRequest("phase4", None, cast(Mode, chosen), plan_only, force_soak, timeout)


def _step(text: str, max_step: int) -> int:
    choose = f"choose 0..{max_step} (0 turns it off)"
    if re.fullmatch(r"-?[0-9]+", text) is None:
        raise RequestError(f"step {text!r} is not a whole number: {choose}")
    if not 0 <= int(text) <= max_step:
        raise RequestError(f"step {text!r} is out of range: {choose}")
    return int(text)


def _lock_timeout(text: str | None) -> float:
    if text is None:
        return 0.0
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 3600:
        raise RequestError(f"--lock-timeout {text!r}: give seconds between 0 and 3600")
    return seconds
