"""The slow fact calls each precheck makes, started together when the prechecks are collected.

Each entry lists the calls exactly as its precheck in checks/ makes them through
``prefetch.result``: same function, same arguments. A call listed here that the precheck makes
differently is simply made again on the spot, so a mismatch costs time, never correctness.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import Any

from testinfra.host import Host

from nexus_deploy.facts import database, docker_engine, git, http, nginx, tls
from nexus_deploy.facts import host as host_facts
from nexus_deploy.phase_config import load_phase_configs
from nexus_deploy.prechecks import PRECHECK_NAMES
from nexus_deploy.prefetch import Prefetch, concurrent_host
from nexus_deploy.profile import TargetProfile

Call = tuple[Callable[..., Any], tuple[Hashable, ...]]


def host_calls(name: str, profile: TargetProfile, host: Host) -> list[Call]:
    """Calls made through the target host's testinfra backend."""
    if name == "SYSTEM":
        return [
            (host_facts.system_identity, (host,)),
            (host_facts.missing_commands, (host, profile.system.required_commands)),
            (host_facts.can_act_as_root, (host,)),
        ]
    if name == "SERVICES":
        return [(host_facts.service_running, (host, service)) for service in profile.services]
    if name == "DOCKER":
        return [(host_facts.compose_version, (host, c)) for c in host_facts.COMPOSE_COMMANDS]
    if name == "DISK":
        return [(host_facts.free_gb, (host, str(path))) for path in profile.disk.paths]
    if name == "MEMORY":
        return [(host_facts.available_memory_gb, (host,))]
    if name == "REPOSITORY":
        return [(git.repository_state, (host, str(profile.repository.path)))]
    if name == "PREVIOUS_PHASES":
        marker = profile.previous_phases.completion_marker
        return [
            (host_facts.report_state, (host, str(report), marker))
            for report in profile.previous_phases.reports
        ]
    if name == "SECURITY":
        spec = profile.security
        certificate = (str(spec.certificate), str(spec.key), spec.hostname)
        return [
            (tls.read_certificate, (host, *certificate)),
            (nginx.read_config, (host, str(spec.nginx_config))),
        ]
    if name == "BACKUP":
        backup, audit = str(profile.backup.dir), str(profile.audit.dir)
        return [
            (host_facts.is_directory, (host, backup)),
            (host_facts.is_writable_dir, (host, backup)),
            (host_facts.free_gb, (host, backup)),
            (host_facts.is_directory, (host, audit)),
            (host_facts.is_writable_dir, (host, audit)),
        ]
    return []


def deployer_calls(name: str, profile: TargetProfile, config_dir: Path) -> list[Call]:
    """Calls made from the deployer itself: over the network, or reading its own files."""
    if name == "CONFIG":
        # Pure Python, so it gains from a thread only while the others wait: which they do.
        return [(load_phase_configs, (config_dir,))]
    if name == "DOCKER":
        return [(docker_engine.probe_engine, (profile.docker.url, profile.docker.ping_timeout_s))]
    if name == "API":
        gateway = profile.gateway
        return [
            (http.probe_health, (e.url + gateway.health_path, gateway.timeout_s, gateway.ca_file))
            for e in gateway.endpoints
        ]
    if name == "DATABASE":
        docker_spec = profile.docker
        return [
            (
                docker_engine.inspect_container,
                (docker_spec.url, docker_spec.ping_timeout_s, profile.database.container),
            ),
            (database.flag_table_check, (profile.database,)),
        ]
    if name == "SECURITY":
        security, timeout = profile.security, profile.gateway.timeout_s
        endpoint = (security.tls_endpoint, security.hostname, timeout)
        return [(tls.served_endpoint, endpoint), (tls.legacy_versions_accepted, endpoint)]
    return []


def start_probes(
    prefetch: Prefetch, prechecks: Iterable[str], profile: TargetProfile, config_dir: Path
) -> None:
    """Start the calls of the selected prechecks. Host calls start only where they may run side
    by side (``concurrent_host``: this machine, without sudo); elsewhere each precheck makes
    its own, one by one."""
    host = concurrent_host(profile.host, profile.command_timeout_s)
    for name in prechecks:
        if name not in PRECHECK_NAMES:
            raise ValueError(f"no precheck is named {name!r}")
        calls = deployer_calls(name, profile, config_dir)
        if host is not None:
            calls += host_calls(name, profile, host)
        for call, args in calls:
            prefetch.start(call, *args)
