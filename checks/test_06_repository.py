"""REPOSITORY: the platform checkout is intact, on its branch, nothing uncommitted, not behind
its upstream (as last fetched: a stale node of a fleet)."""

from __future__ import annotations

import pytest

from nexus_deploy.facts.git import repository_state
from nexus_deploy.suite.prefetch import Wanted
from nexus_deploy.suite.verdict import no_problems

pytestmark = pytest.mark.precheck
# Checked on every API node of a fleet (see nexus_deploy.suite.fleet).
ROLE = "api"


def wanted_facts(target, config_dir):
    return Wanted(on_host=[(repository_state, (str(target.repository.path),))])


def test_repository(host, target, record_property, prefetch):
    spec = target.repository
    state = prefetch.result(repository_state, host, str(spec.path))
    record_property("path", str(spec.path))
    if not state.is_repository:
        no_problems([f"{spec.path} is not a git repository"])
    record_property("branch", state.branch)
    record_property("expected_branch", spec.branch)
    record_property("head", state.head)
    record_property("fsck", "clean" if state.fsck_ok else "damage")
    record_property("uncommitted", len(state.uncommitted))

    problems = []
    if not state.fsck_ok:
        problems.append(f"git fsck found damage in {spec.path}: {state.fsck_output[:200]}")
    if state.branch != spec.branch:
        problems.append(f"{spec.path} is on branch {state.branch}, expected {spec.branch}")
    if state.uncommitted:
        shown = ", ".join(state.uncommitted[:5])
        problems.append(f"{spec.path} has {len(state.uncommitted)} uncommitted paths: {shown}")
    if state.behind is not None:
        record_property("behind_upstream", state.behind)
    if state.behind:
        problems.append(
            f"{spec.path} is {state.behind} commits behind {state.upstream}: a stale checkout"
        )
    no_problems(problems)
