"""What the operator asked for: a phase's move, and how carefully to go about it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nexus_deploy import phases
from nexus_deploy.change.refusal import Refused
from nexus_deploy.phases.base import ConfigError, Move, RequestError

PREPARE_SUMMARY = "deploy (activates nothing)"


@dataclass(frozen=True)
class ActivationRequest:
    """A validated deployment request: the phase and the move asked of it (``--activate``), or
    none (``--prepare``: a deployment that activates nothing), and how to go about it."""

    move: Move | None
    plan_only: bool = False
    force_soak: bool = False
    lock_timeout_s: float = 0.0
    emergency: str | None = None  # the reason of an emergency move down (--emergency)

    @property
    def phase(self) -> str:
        return self.move.phase if self.move else ""

    @property
    def summary(self) -> str:
        return self.move.summary if self.move else PREPARE_SUMMARY

    @property
    def wanted(self) -> Move:
        """The move to plan and apply; a deployment that activates nothing has none."""
        if self.move is None:
            raise Refused("this deployment activates nothing (--prepare): no move to make")
        return self.move


def parse_request(
    phase: str | None,
    given: Mapping[str, str | None],
    plan_only: bool,
    force_soak: bool,
    lock_timeout: str | None,
    config_dir: Path,
    emergency: str | None = None,
    prepare: bool = False,
) -> ActivationRequest | None:
    """Validate the activation options together; None when no activation was asked for.
    ``given`` holds every phase option by flag (``--step``: "2", or None when not given)."""
    if prepare:
        extra = [flag for flag, value in given.items() if value is not None]
        extra += ["--activate"] if phase is not None else []
        extra += [n for n, on in (("--plan", plan_only), ("--force-soak", force_soak)) if on]
        extra += ["--emergency"] if emergency is not None else []
        if extra:
            raise RequestError(f"--prepare activates nothing: drop {', '.join(extra)}")
        return ActivationRequest(None, lock_timeout_s=_lock_timeout(lock_timeout))
    if phase is None:
        given_flags = [flag for flag, value in given.items() if value is not None]
        stray = [*given_flags, *(["--lock-timeout"] if lock_timeout is not None else [])]
        stray += ["--emergency"] if emergency is not None else []
        stray += [name for name, on in (("--plan", plan_only), ("--force-soak", force_soak)) if on]
        if stray:
            raise RequestError(f"{', '.join(stray)} needs --activate")
        return None
    known = phases.registered()
    if phase not in known:
        # The value given is not repeated (it may hold anything): the option and the choices.
        raise RequestError(f"--activate: unknown phase (phases: {', '.join(known)})")
    chosen = known[phase]
    takes = [option.flag for option in chosen.options]
    for flag, value in given.items():
        if value is not None and flag not in takes:
            owners = " or ".join(phases.owners_of(flag))
            its = " ".join(f"{o.flag} {o.metavar}" for o in chosen.options) or "no option"
            raise RequestError(f"{flag} is for --activate {owners}; {phase} takes {its}")
    timeout = _lock_timeout(lock_timeout)
    move = chosen.parse(
        {flag: given.get(flag) for flag in takes}, _config_or_none(chosen, config_dir)
    )
    if emergency is not None:
        _emergency_reason(emergency)
        if not chosen.turns_off(move):
            raise RequestError(
                f"--emergency only turns features off; {move.summary} does not "
                "(an emergency moves down only)"
            )
    return ActivationRequest(move, plan_only, force_soak, timeout, emergency)


def _emergency_reason(text: str) -> None:
    # The reason goes into every report and the audit: one printable line an operator wrote.
    if not text.strip():
        raise RequestError('--emergency needs a reason: --emergency "what happened"')
    if len(text) > 200 or not text.isprintable():
        raise RequestError("--emergency REASON: one line of at most 200 printable characters")


def _config_or_none(phase: phases.AnyPhase, config_dir: Path) -> Any:
    # Broken configs are the CONFIG precheck's to report; the request is still checked.
    try:
        return phase.load(config_dir)
    except ConfigError:
        return None


def _lock_timeout(text: str | None) -> float:
    if text is None:
        return 0.0
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 3600:
        raise RequestError("--lock-timeout: give seconds between 0 and 3600")
    return seconds
