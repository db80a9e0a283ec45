"""How a precheck ends: every problem it found, in one message an operator can act on."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import psycopg
import pytest

from nexus_deploy.change.refusal import Refused
from nexus_deploy.db import without_secrets
from nexus_deploy.facts.bounded_host import HostCommandError, HostCommandTimeout

# Raised from deep inside testinfra or psycopg, yet their message says all an operator needs:
# which command on which host and the limit; which server refused and why. Shown alone, as
# no_problems shows its own: a traceback through psycopg would print each frame's arguments,
# the connection's password among them.
SELF_EXPLAINING = (HostCommandTimeout, HostCommandError, psycopg.Error)


def no_problems(problems: list[str]) -> None:
    """Fail the precheck with all problems found, not just the first."""
    __tracebackhide__ = True
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


@contextlib.contextmanager
def refusal_fails() -> Iterator[None]:
    """Turn a deployment's refusal into a test failure that shows only its message."""
    __tracebackhide__ = True
    refusal = None
    try:
        yield
    except Refused as refused:
        refusal = str(refused)
    if refusal is not None:
        # Still inside the context manager's __exit__, where the Refused is being handled:
        # "from None" keeps it from being printed a second time as the failure's context.
        raise pytest.fail.Exception(refusal, pytrace=False) from None


def shorten_self_explaining(report: pytest.TestReport, call: pytest.CallInfo[None]) -> None:
    """Show a SELF_EXPLAINING failure as its message, without the traceback through testinfra."""
    if call.excinfo is not None and call.excinfo.errisinstance(SELF_EXPLAINING):
        report.longrepr = without_secrets(str(call.excinfo.value))
