"""Facts about the gateway's HTTP endpoints."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import requests


@dataclass(frozen=True)
class Probe:
    url: str
    status_code: int | None
    latency_ms: float
    body_status: str | None = None
    error: str | None = None


def describe(exc: requests.RequestException, timeout_s: float) -> str:
    """The cause of a failed request in a few words, without urllib3's nested reprs."""
    if isinstance(exc, requests.Timeout):
        return f"no answer within {timeout_s:g} s"
    if isinstance(exc, requests.exceptions.SSLError):
        return f"TLS failure: {str(exc.args[0])[-160:]}"
    if isinstance(exc, requests.ConnectionError) and "refused" in str(exc):
        return "connection refused"
    return f"{type(exc).__name__}: {str(exc)[:160]}"


def probe_health(url: str, timeout_s: float, ca_file: Path | None) -> Probe:
    """GET a health endpoint once, bounded by ``timeout_s``; errors are facts, not exceptions."""
    started = time.perf_counter()
    verify: bool | str = str(ca_file) if ca_file else True
    try:
        response = requests.get(url, timeout=timeout_s, verify=verify)
    except requests.RequestException as exc:
        elapsed = (time.perf_counter() - started) * 1000
        return Probe(url, None, elapsed, error=describe(exc, timeout_s))
    elapsed = (time.perf_counter() - started) * 1000
    try:
        payload = response.json()
        body_status = str(payload.get("status")) if isinstance(payload, dict) else None
    except ValueError:
        body_status = None
    return Probe(url, response.status_code, elapsed, body_status)
