"""Activation: plan, then apply and verify; runs only after all twelve prechecks passed.

The plugin keeps these out of a run that has no --activate, that deselected a precheck, or
whose prechecks failed; --plan keeps the apply test out.
"""

from __future__ import annotations

import pytest

from nexus_deploy.verdict import refusal_fails


@pytest.mark.activation("plan")
@pytest.mark.order(13)
def test_plan(deployment, record_property):
    with refusal_fails():
        changes = deployment.make_plan()
        record_property("changes", len(changes))
        deployment.check_progression()


@pytest.mark.activation("apply")
@pytest.mark.order(14)
def test_apply_and_verify(deployment, record_property):
    with refusal_fails():  # apply refuses unless the plan was made and the guard cleared it
        deployment.apply()
        deployment.verify()
    record_property("committed", deployment.outcome.committed)
