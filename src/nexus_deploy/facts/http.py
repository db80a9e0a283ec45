"""Facts about the gateway's HTTP endpoints."""

from __future__ import annotations

import re
import ssl
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
    # Set instead of error when the request was never made: the CA file cannot verify TLS.
    ca_problem: str | None = None


def ca_file_problem(url: str, ca_file: Path | None) -> str | None:
    """Why ``ca_file`` cannot verify the TLS peer of ``url`` (missing, unreadable, no
    certificate in it), or None when it can, or is not needed (http, or no CA file set).
    requests would raise a bare OSError naming neither the CA file nor the endpoint, so the
    file is tried first as ssl will load it."""
    if ca_file is None or not url.startswith("https://"):
        return None
    try:
        if ca_file.is_dir():  # requests hands a directory to ssl as a capath, like this
            ssl.create_default_context(capath=str(ca_file))
        else:
            ssl.create_default_context(cafile=str(ca_file))
    except OSError as exc:  # ssl.SSLError is one too
        return unusable_ca_file(ca_file, exc)
    return None


def unusable_ca_file(ca_file: Path | None, exc: OSError) -> str:
    why = re.sub(r"\s*\(_ssl\.c:\d+\)$", "", str(exc.strerror or exc))
    return f"CA file {ca_file} unusable: {why}"


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
    ca_problem = ca_file_problem(url, ca_file)
    if ca_problem:
        return Probe(url, None, 0.0, ca_problem=ca_problem)
    started = time.perf_counter()
    verify: bool | str = str(ca_file) if ca_file else True
    try:
        response = requests.get(url, timeout=timeout_s, verify=verify)
    except requests.RequestException as exc:
        elapsed = (time.perf_counter() - started) * 1000
        return Probe(url, None, elapsed, error=describe(exc, timeout_s))
    except OSError as exc:  # the CA file went away since it was tried above
        return Probe(url, None, 0.0, ca_problem=unusable_ca_file(ca_file, exc))
    elapsed = (time.perf_counter() - started) * 1000
    try:
        payload = response.json()
        body_status = str(payload.get("status")) if isinstance(payload, dict) else None
    except ValueError:
        body_status = None
    return Probe(url, response.status_code, elapsed, body_status)
