"""DOCKER: the daemon answers within a bound, its API is new enough, Compose exists."""

from __future__ import annotations

import docker.errors
import pytest

from nexus_deploy.facts import docker_engine
from nexus_deploy.facts import host as host_facts
from nexus_deploy.suite.prefetch import Wanted
from nexus_deploy.suite.verdict import no_problems

pytestmark = pytest.mark.precheck
# Checked where the platform database runs, on a fleet (see nexus_deploy.suite.fleet).
ROLE = "db"


def wanted_facts(target, config_dir):
    spec = target.docker
    return Wanted(
        from_deployer=[(docker_engine.probe_engine, (spec.url, spec.ping_timeout_s))],
        # Already started while pytest imported the suite (prefetch.start_early) on this host.
        on_host=[(host_facts.compose_version, (c,)) for c in host_facts.COMPOSE_COMMANDS],
    )


def test_docker(host, target, record_property, prefetch):
    spec = target.docker
    record_property("url", spec.url)
    record_property("min_api_version", spec.min_api_version)
    problems = []
    try:
        engine = prefetch.result(docker_engine.probe_engine, spec.url, spec.ping_timeout_s)
    except docker.errors.DockerException as exc:
        problems.append(f"docker daemon at {spec.url} did not answer: {exc}")
    else:
        record_property("api_version", engine.api_version)
        record_property("engine_version", engine.engine_version)
        record_property("ping_ms", round(engine.ping_ms, 1))
        api, minimum = engine.api_version, spec.min_api_version
        if docker_engine.version_tuple(api) < docker_engine.version_tuple(minimum):
            problems.append(f"docker API version {api} is below the minimum {minimum}")
    # In order, stopping at the first that answers: with no facts gathered beforehand (a
    # backend not run from threads), v1 is not started at all where v2 answers.
    versions = (
        prefetch.result(host_facts.compose_version, host, command)
        for command in host_facts.COMPOSE_COMMANDS
    )
    compose = next((version for version in versions if version), None)
    record_property("compose", compose or "missing")
    if compose is None:
        problems.append("neither `docker compose` nor `docker-compose` is available")
    no_problems(problems)
