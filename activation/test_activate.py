"""Activation: plan, then apply and verify; runs only after every precheck passed.

The plugin keeps these out of a run that has no --activate (or --prepare), that deselected a
precheck, or whose prechecks failed; --plan keeps only the plan, --prepare only the restore
point. It also orders them after the
prechecks (see nexus_deploy.suite.gate.run_order).
"""

from __future__ import annotations

import pytest

from nexus_deploy.suite.verdict import refusal_fails


@pytest.mark.activation("prepare")
def test_restore_point(deployment, record_property):
    with refusal_fails():
        deployment.take_restore_point()
    record_property("restore_point", str(deployment.progress.restore_point.snapshot))


@pytest.mark.activation("plan")
def test_plan(deployment, record_property):
    with refusal_fails():
        changes = deployment.make_plan()
        record_property("changes", len(changes))
        deployment.check_progression()


@pytest.mark.activation("apply")
def test_apply_and_verify(deployment, record_property):
    with refusal_fails():  # apply refuses unless the plan was made and the guard cleared it
        deployment.apply()
        deployment.verify()
    record_property("committed", deployment.progress.committed)
