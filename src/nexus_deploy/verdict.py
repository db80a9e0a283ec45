"""How a precheck ends: every problem it found, in one message an operator can act on."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from nexus_deploy.deployment import Refused


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
