"""Read-only fact calls made side by side before the prechecks run, which then judge them.

Most of a precheck's time is spent waiting: on openssl, git, nginx -T and service managers, on
TLS handshakes, on docker and PostgreSQL. Made one after another, those waits add up to about
0.25 s on the sandbox, besides Compose; started together as soon as the prechecks are
collected, they overlap: each precheck module declares the calls it makes (``wanted_facts``,
see ``Wanted``), and ``start_wanted`` starts those of the collected ones. Docker Compose v1
alone is a Python
program that takes about 0.5 s to print its version, so that call starts even earlier, while
pytest is still importing the suite (``start_early``, from the options entry point). Host
commands run side by side only on this machine without sudo (``concurrent_host``); over ssh
each check runs its own, one by one, as before.

The calls end before the first test begins (``DeploymentRun.collected`` waits for them): pytest
changes os.environ around every test, which threads must not race. A call is known by the
function and its arguments. ``result(f, *args)`` returns the answer of a started ``f(*args)``,
or raises what it raised, exactly as the direct call would; a call nobody started runs on the
spot. Only facts are fetched early: judging them stays with the precheck.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
import yaml
from testinfra.host import Host

from nexus_deploy.config import yamlfile
from nexus_deploy.config.targets import (
    DEFAULT_COMMAND_TIMEOUT_S,
    FLEET_WORKERS,
    resolve_target_path,
)
from nexus_deploy.facts.bounded_host import bounded_host, usable_limit
from nexus_deploy.facts.host import COMPOSE_COMMANDS, compose_version

if TYPE_CHECKING:  # imported before pydantic is: see nexus_deploy.config.targets
    from nexus_deploy.config.profile import TargetProfile

T = TypeVar("T")
Call = tuple[Callable[..., Any], tuple[Hashable, ...]]

# The calls mostly wait on other processes and sockets, so more threads than cores pay off:
# about 28 calls are started for the twelve prechecks of 2026. One thread measured 0.1 s slower
# here; 2, 3, 4 and 6 alike.
WORKERS = 6


class Prefetch:
    """Background fact calls, each known by its function and arguments."""

    def __init__(self, workers: int = WORKERS) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nexus-prefetch")
        self._futures: dict[tuple[Callable[..., Any], tuple[Hashable, ...]], Future[Any]] = {}
        self.started_count = 0
        # Asked for but not started (or asked twice): over ssh, every host call; on this
        # machine, none, unless a precheck declares a call otherwise than it makes it.
        self.made_on_the_spot: list[str] = []

    def start(self, call: Callable[..., Any], *args: Hashable) -> None:
        """Begin ``call(*args)`` in the background, unless that same call has already begun."""
        key = (call, args)
        if key not in self._futures:
            self._futures[key] = self._pool.submit(call, *args)
            self.started_count += 1

    def result(self, call: Callable[..., T], *args: Hashable) -> T:
        """What ``call(*args)`` returns (or raises): from the background if started, else now."""
        future = self._futures.pop((call, args), None)
        if future is None:
            self.made_on_the_spot.append(describe(call, args))
            return call(*args)
        answer: T = future.result()
        return answer

    def wait(self, tell: Callable[[str], None] | None = None, every_s: float = 5.0) -> None:
        """Until every started call has ended. Each is bounded (network calls by their
        timeouts, host commands by the profile's command_timeout_s), yet may take a while: every
        ``every_s`` seconds, ``tell`` is told which calls are still running."""
        pending = set(self._futures.values())
        while pending:
            _, pending = futures.wait(pending, timeout=every_s)
            if pending and tell is not None:
                tell("still waiting for " + ", ".join(self.running()))

    def running(self) -> list[str]:
        """The started calls not yet ended, named for a reader."""
        return [describe(*key) for key, future in self._futures.items() if not future.done()]

    def unasked(self) -> list[str]:
        """The started calls nobody asked for yet, named for a reader."""
        return [describe(*key) for key in self._futures]

    def close(self, wait: bool = True) -> None:
        """Drop the calls not yet begun; with ``wait``, also wait for the running ones."""
        self._pool.shutdown(wait=wait, cancel_futures=True)


def describe(call: Callable[..., Any], args: tuple[Hashable, ...]) -> str:
    return f"{getattr(call, '__qualname__', call)}{args!r}"


PREFETCH_KEY = pytest.StashKey[Prefetch]()


def start_early(config: pytest.Config) -> None:
    """Start the Compose probe before conftest.py is imported (not for a run that only lists:
    the caller's to decide)."""
    path = resolve_target_path(config.known_args_namespace.nexus_target, config.rootpath)
    try:
        raw = yamlfile.load(yamlfile.read_bounded(path))
        host_spec = str(raw.get("host", "local://"))
        limit_s = usable_limit(raw.get("command_timeout_s", DEFAULT_COMMAND_TIMEOUT_S))
        # A fleet's host calls share this pool: as many at once as its profile allows.
        workers = int(raw["fleet"].get("workers", FLEET_WORKERS)) if raw.get("fleet") else WORKERS
    except (OSError, ValueError, AttributeError, yaml.YAMLError):  # UnicodeDecodeError too
        return  # the profile is read, checked and if need be refused properly later
    if limit_s is None:
        return  # likewise
    host = concurrent_host(host_spec, limit_s)
    if host is None:
        return
    prefetch = Prefetch(max(1, min(workers, 64)))
    # A run refused before it starts never closes it; a run that started has waited already.
    config.add_cleanup(lambda: prefetch.close(wait=False))
    # bounded_host keeps one host per spec and limit: the DOCKER precheck asks with this one.
    # Both forms at once, not one after the other: v1 alone takes ~0.5 s, see above.
    for command in COMPOSE_COMMANDS:
        prefetch.start(compose_version, host, command)
    config.stash[PREFETCH_KEY] = prefetch


def concurrent_host(host_spec: str, limit_s: float) -> Host | None:
    """The host of ``host_spec`` (commands bounded by ``limit_s``) if its commands may run from
    several threads: this machine, without sudo. Over ssh, several connections at once could
    each ask for a password or a host key; with sudo, each command could ask for one."""
    try:
        host = bounded_host(host_spec, limit_s)
    except Exception:  # each backend fails its own way; the prechecks that use it report it
        return None
    local = host.backend.NAME == "local" and not host.backend.sudo
    return host if local else None


@dataclass(frozen=True)
class Wanted:
    """The slow fact calls a precheck makes, as it makes them through ``Prefetch.result``: same
    function, same arguments. A precheck module declares them in ``wanted_facts(target,
    config_dir)`` beside its test; a call declared otherwise than made is simply made again on
    the spot, so a mismatch costs time, never correctness."""

    from_deployer: list[Call] = field(default_factory=list)  # over the network, or own files
    on_host: list[Call] = field(default_factory=list)  # (function, arguments after the host)


WANTED_FACTS = "wanted_facts"  # the function a precheck module declares its calls in


@dataclass(frozen=True)
class Declaration:
    """A collected precheck module, the profile it sees, and the host its host calls may be
    started on side by side (None: nowhere; the precheck makes them one by one)."""

    module: ModuleType
    profile: TargetProfile
    host: Host | None


def start_wanted(prefetch: Prefetch, declarations: list[Declaration], config_dir: Path) -> None:
    """Start the calls the modules of the collected prechecks declare. Host calls start only
    where they may run side by side (``concurrent_host``: this machine, without sudo; a fleet's
    hosts); elsewhere each precheck makes its own, one by one."""
    for declaration in declarations:
        module, profile, host = declaration.module, declaration.profile, declaration.host
        declare = getattr(module, WANTED_FACTS, None)
        if declare is None:
            continue  # a precheck with no slow call to start
        try:
            wanted = declare(profile, config_dir)
        except Exception:  # the precheck then makes its own calls, and fails on its own if so
            continue
        if not isinstance(wanted, Wanted):
            continue  # likewise: a declaration we cannot read costs time, not correctness
        calls = list(wanted.from_deployer)
        if host is not None:
            calls += [(call, (host, *args)) for call, args in wanted.on_host]
        for call, args in calls:
            prefetch.start(call, *args)
