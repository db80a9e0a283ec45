"""How a precheck ends: every problem it found, in one message an operator can act on."""

from __future__ import annotations

import pytest


def no_problems(problems: list[str]) -> None:
    """Fail the precheck with all problems found, not just the first."""
    __tracebackhide__ = True
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)
