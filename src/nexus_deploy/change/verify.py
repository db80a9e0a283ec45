"""After commit: the platform must show the new flags, through the gateway and through nginx."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

from nexus_deploy.config.profile import Endpoint, GatewaySpec
from nexus_deploy.facts.http import ca_file_problem
from nexus_deploy.values import JsonValue, to_json


@dataclass(frozen=True)
class Seen:
    """What one endpoint showed in one look: for the audit, the reports and the reviewer."""

    name: str
    url: str
    ok: bool
    saw: str  # "all 7 flags as written", or what was wrong
    latency_ms: float


@dataclass(frozen=True)
class Visibility:
    ok: bool
    elapsed_s: float
    problem: str = ""
    seen: tuple[Seen, ...] = ()  # each endpoint, at the last look


# Endpoints looked at side by side: on a fleet, the load balancer and every API node.
LOOKS_AT_ONCE = 16


def observe(spec: GatewaySpec, expected: dict[str, JsonValue]) -> list[Seen]:
    """One look at every endpoint: healthy, reachable, showing the expected flag values?"""
    if len(spec.endpoints) == 1:
        return [look_at(spec.endpoints[0], spec, expected)]
    workers = min(LOOKS_AT_ONCE, len(spec.endpoints))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nexus-verify") as pool:
        return list(pool.map(lambda endpoint: look_at(endpoint, spec, expected), spec.endpoints))


def look_at(endpoint: Endpoint, spec: GatewaySpec, expected: dict[str, JsonValue]) -> Seen:
    url = endpoint.url + spec.flags_path
    started = time.monotonic()
    ca_problem = ca_file_problem(endpoint.url, spec.ca_file)
    if ca_problem:
        return Seen(endpoint.name, url, False, ca_problem, 0.0)
    verify: bool | str = str(spec.ca_file) if spec.ca_file else True
    try:
        health = requests.get(
            endpoint.url + spec.health_path, timeout=spec.timeout_s, verify=verify
        )
        flags = requests.get(url, timeout=spec.timeout_s, verify=verify)
        shown = flags.json() if flags.status_code == 200 else None
    except (requests.RequestException, ValueError) as exc:
        latency_ms = (time.monotonic() - started) * 1000
        return Seen(endpoint.name, url, False, type(exc).__name__, latency_ms)
    latency_ms = (time.monotonic() - started) * 1000
    wrong = []
    if health.status_code != 200:
        wrong.append(f"health answered {health.status_code}")
    if not isinstance(shown, dict):
        wrong.append(f"flags answered {flags.status_code}, no JSON object")
    else:
        stale = [
            k for k, v in expected.items() if k not in shown or to_json(shown[k]) != to_json(v)
        ]
        if stale:
            wrong.append(f"old or missing {', '.join(sorted(stale))}")
    saw = "; ".join(wrong) or f"all {len(expected)} changed flags as written"
    return Seen(endpoint.name, url, not wrong, saw, latency_ms)


def problems_at(spec: GatewaySpec, expected: dict[str, JsonValue]) -> list[str]:
    """What each endpoint does not yet show: unhealthy, unreachable or an old flag value."""
    return [f"{s.name}: {s.saw}" for s in observe(spec, expected) if not s.ok]


def wait_until_visible(
    spec: GatewaySpec, expected: dict[str, JsonValue], timeout_s: float
) -> Visibility:
    """Poll every endpoint until all show ``expected`` and stay healthy, or time runs out."""
    started = time.monotonic()
    while True:
        seen = tuple(observe(spec, expected))
        problems = [f"{s.name}: {s.saw}" for s in seen if not s.ok]
        elapsed = time.monotonic() - started
        if not problems:
            return Visibility(True, elapsed, seen=seen)
        if elapsed >= timeout_s:
            return Visibility(False, elapsed, "; ".join(problems), seen)
        time.sleep(0.2)
