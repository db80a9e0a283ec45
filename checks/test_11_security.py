"""SECURITY: a valid certificate that matches its key and host, served live, and
nginx configured without legacy TLS and without announcing its version."""

from __future__ import annotations

import pytest

from nexus_deploy.facts import nginx, tls
from nexus_deploy.suite.prefetch import Wanted
from nexus_deploy.suite.verdict import no_problems

pytestmark = pytest.mark.precheck
# Checked on every API node of a fleet (see nexus_deploy.suite.fleet).
ROLE = "api"


def wanted_facts(target, config_dir):
    spec = target.security
    endpoint = (spec.tls_endpoint, spec.hostname, target.gateway.timeout_s)
    return Wanted(
        from_deployer=[(tls.served_endpoint, endpoint), (tls.legacy_versions_accepted, endpoint)],
        on_host=[
            (tls.read_certificate, (str(spec.certificate), str(spec.key), spec.hostname)),
            (nginx.read_config, (str(spec.nginx_config),)),
        ],
    )


def test_security(host, target, record_property, prefetch, precheck_warning):
    spec = target.security
    timeout = target.gateway.timeout_s
    endpoint = (spec.tls_endpoint, spec.hostname, timeout)
    problems = []
    try:
        served = prefetch.result(tls.served_endpoint, *endpoint)
    except OSError as exc:
        served = None
        why = f"no answer within {timeout:g} s" if "timed out" in str(exc) else exc
        problems.append(f"TLS endpoint {spec.tls_endpoint} unreachable: {why}")
    problems += certificate_problems(host, spec, served, record_property, prefetch)
    if served is not None:
        problems += server_header_problems(spec, served, timeout, record_property, precheck_warning)
    problems += nginx_problems(host, spec, record_property, prefetch)
    accepted = prefetch.result(tls.legacy_versions_accepted, *endpoint)
    # Unreached, the endpoint accepted nothing, and refused nothing either: unknown.
    record_property("legacy_tls_accepted", ",".join(accepted) or ("none" if served else "unknown"))
    if accepted:
        problems.append(f"{spec.tls_endpoint} completes handshakes with {', '.join(accepted)}")
    no_problems(problems)


def certificate_problems(host, spec, served, record_property, prefetch):
    """The certificate file: parse, expiry, key, hostname, and whether the endpoint serves it."""
    try:
        cert = prefetch.result(
            tls.read_certificate, host, str(spec.certificate), str(spec.key), spec.hostname
        )
    except tls.CertificateError as exc:
        return [str(exc)]
    days = cert.days_left()
    record_property("subject", cert.subject)
    record_property("days_left", days)
    record_property("min_days", spec.min_days_valid)
    problems = []
    if days < 0:
        ago = -days - 1
        problems.append(
            f"certificate {spec.certificate} expired {ago} days ago"
            if ago
            else f"certificate {spec.certificate} expired less than a day ago"
        )
    elif days < spec.min_days_valid:
        problems.append(
            f"certificate {spec.certificate} expires in {days} days, "
            f"below the minimum {spec.min_days_valid}"
        )
    if not cert.matches_key:
        problems.append(f"certificate {spec.certificate} does not match key {spec.key}")
    if not cert.matches_hostname:
        problems.append(f"certificate {spec.certificate} is not valid for {spec.hostname}")
    if served is not None:
        record_property("served_matches_file", served.fingerprint == cert.fingerprint)
        if served.fingerprint != cert.fingerprint:
            problems.append(
                f"{spec.tls_endpoint} serves a different certificate than {spec.certificate}"
            )
    return problems


def server_header_problems(spec, served, timeout, record_property, precheck_warning):
    """The live endpoint's answer to HEAD must not name nginx's version (server_tokens)."""
    if served.server_header is None:
        record_property("server_header", "no answer")
        precheck_warning(
            f"{spec.tls_endpoint} gave no HTTP answer within {timeout:g} s: "
            "whether it announces its version is unknown"
        )
        return []
    shown = served.server_header[:120]  # the server's own text, into the audit and reports
    record_property("server_header", shown or "none")
    if tls.announces_version(served.server_header):
        return [f"{spec.tls_endpoint} announces its version (Server: {shown})"]
    return []


def nginx_problems(host, spec, record_property, prefetch):
    """nginx's own view of its configuration: valid, no legacy protocols, no version banner."""
    config = prefetch.result(nginx.read_config, host, str(spec.nginx_config))
    record_property("nginx_config_test", "ok" if config.test_ok else "failed")
    record_property("server_tokens_off", config.server_tokens_off)
    problems = []
    if not config.test_ok:
        problems.append(f"nginx -T -c {spec.nginx_config} failed: {config.test_output}")
    if config.legacy_protocols:
        legacy = ", ".join(sorted(config.legacy_protocols))
        problems.append(f"nginx config {spec.nginx_config} enables {legacy}")
    turned_on = sorted(set(config.server_tokens) - {"off"})
    if turned_on:
        problems.append(
            f"nginx config {spec.nginx_config} sets server_tokens {', '.join(turned_on)}"
        )
    elif not config.server_tokens_off:
        problems.append(f"nginx config {spec.nginx_config} does not set server_tokens off")
    return problems
