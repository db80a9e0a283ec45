"""DATABASE: the PostgreSQL container is healthy, answers, and holds the flag table."""

from __future__ import annotations

import docker.errors
import psycopg
import pytest

from nexus_deploy.facts import database, docker_engine
from nexus_deploy.suite.prefetch import Wanted
from nexus_deploy.suite.verdict import no_problems

pytestmark = pytest.mark.precheck
# Checked where the platform database runs, on a fleet (see nexus_deploy.suite.fleet).
ROLE = "db"


def wanted_facts(target, config_dir):
    spec, engine = target.database, target.docker
    container = (engine.url, engine.ping_timeout_s, spec.container)
    return Wanted(
        from_deployer=[
            (docker_engine.inspect_container, container),
            (database.flag_table_check, (spec,)),
        ]
    )


def test_database(target, record_property, prefetch):
    spec, engine = target.database, target.docker
    problems = []
    try:
        container = prefetch.result(
            docker_engine.inspect_container, engine.url, engine.ping_timeout_s, spec.container
        )
    except docker.errors.DockerException as exc:
        problems.append(f"cannot ask docker about container {spec.container}: {exc}")
    else:
        record_property("container_status", container.status)
        record_property("container_health", container.health)
        if container.status != "running":
            problems.append(f"container {spec.container} is {container.status}, not running")
        elif container.health != "healthy":
            problems.append(f"container {spec.container} health is {container.health}")

    where = f"{spec.user}@{spec.host}:{spec.port}/{spec.dbname}"
    record_property("connection", where)
    try:
        columns = prefetch.result(database.flag_table_check, spec)
    except psycopg.Error as exc:
        record_property("connected", False)
        problems.append(f"cannot connect to {where}: {str(exc).strip()[:200]}")
    else:
        record_property("connected", True)
        missing = [c for c in database.FLAG_COLUMNS if c not in columns]
        if not columns:
            problems.append(f"table {spec.flag_table} not found in {where}")
        elif missing:
            problems.append(f"table {spec.flag_table} lacks columns {', '.join(missing)}")
    no_problems(problems)
