"""Facts about the Docker engine, read through the Docker SDK."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors


@dataclass(frozen=True)
class EngineState:
    api_version: str
    engine_version: str
    ping_ms: float


def connect(url: str, timeout_s: float) -> Any:
    """A client for the engine at ``url``; raises docker.errors.DockerException if it is silent."""
    return docker.DockerClient(base_url=url, version="auto", timeout=timeout_s)


def probe_engine(url: str, timeout_s: float) -> EngineState:
    """Ping and version of the engine at ``url``; raises DockerException if it is silent."""
    with contextlib.closing(connect(url, timeout_s)) as client:
        return engine_state(client)


def engine_state(client: Any) -> EngineState:
    started = time.perf_counter()
    client.ping()
    ping_ms = (time.perf_counter() - started) * 1000
    version = client.version()
    return EngineState(str(version["ApiVersion"]), str(version["Version"]), ping_ms)


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


@dataclass(frozen=True)
class ContainerState:
    status: str  # running, exited, ... or "absent"
    health: str  # healthy, unhealthy, starting, or "none" without a healthcheck


def container_state(client: Any, name: str) -> ContainerState:
    try:
        container = client.containers.get(name)
    except docker.errors.NotFound:
        return ContainerState("absent", "none")
    state = container.attrs.get("State", {})
    health = state.get("Health", {}).get("Status", "none")
    return ContainerState(str(state.get("Status", "unknown")), str(health))


def inspect_container(url: str, timeout_s: float, name: str) -> ContainerState:
    """The container's state as the engine at ``url`` reports it."""
    with contextlib.closing(connect(url, timeout_s)) as client:
        return container_state(client, name)
