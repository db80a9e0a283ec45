"""After commit: the platform must show the new flags, through the gateway and through nginx."""

from __future__ import annotations

import time
from dataclasses import dataclass

import requests

from nexus_deploy.config.profile import GatewaySpec
from nexus_deploy.facts.http import ca_file_problem
from nexus_deploy.values import JsonValue, to_json


@dataclass(frozen=True)
class Visibility:
    ok: bool
    elapsed_s: float
    problem: str = ""


def problems_at(spec: GatewaySpec, expected: dict[str, JsonValue]) -> list[str]:
    """What each endpoint does not yet show: unhealthy, unreachable or an old flag value."""
    verify: bool | str = str(spec.ca_file) if spec.ca_file else True
    timeout = spec.timeout_s
    problems = []
    for endpoint in spec.endpoints:
        ca_problem = ca_file_problem(endpoint.url, spec.ca_file)
        if ca_problem:
            problems.append(f"{endpoint.name}: {ca_problem}")
            continue
        try:
            health = requests.get(endpoint.url + spec.health_path, timeout=timeout, verify=verify)
            flags = requests.get(endpoint.url + spec.flags_path, timeout=timeout, verify=verify)
            shown = flags.json() if flags.status_code == 200 else None
        except (requests.RequestException, ValueError) as exc:
            problems.append(f"{endpoint.name}: {type(exc).__name__}")
            continue
        if health.status_code != 200:
            problems.append(f"{endpoint.name}: health answered {health.status_code}")
        if not isinstance(shown, dict):
            problems.append(f"{endpoint.name}: flags answered {flags.status_code}, no JSON object")
            continue
        stale = [
            k for k, v in expected.items() if k not in shown or to_json(shown[k]) != to_json(v)
        ]
        if stale:
            problems.append(f"{endpoint.name}: old or missing {', '.join(sorted(stale))}")
    return problems


def wait_until_visible(
    spec: GatewaySpec, expected: dict[str, JsonValue], timeout_s: float
) -> Visibility:
    """Poll every endpoint until all show ``expected`` and stay healthy, or time runs out."""
    started = time.monotonic()
    while True:
        problems = problems_at(spec, expected)
        elapsed = time.monotonic() - started
        if not problems:
            return Visibility(True, elapsed)
        if elapsed >= timeout_s:
            return Visibility(False, elapsed, "; ".join(problems))
        time.sleep(0.2)
