"""A run over a fleet: which precheck runs on which hosts, and each host's view of the profile.

A precheck module that names a role (``ROLE = "api"`` or ``"db"``) runs once per host of that
role, its test id naming the host (``test_disk[api-3]``), its audit line too
(``PRECHECK_DISK host=api-3 status=FAIL ...``); the gate wants every one of them. A module
without a ROLE checks the platform once, on the profile's own ``host``. Without a ``fleet:``
section in the profile, every precheck runs once, as before.

The role is read from the module's source (``ast``), not by importing it: the gate must know
which hosts a precheck owes even when its file was left out of the selection.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nexus_deploy.config.fleet import ROLES, Fleet, FleetError, fleet_from_listing, listed_fleet
from nexus_deploy.config.profile import (
    Endpoint,
    TargetProfile,
    node_endpoints,
    node_profile,
    platform_variables,
)
from nexus_deploy.facts.bounded_host import BoundedHost, HostCommandError, fleet_host, listed_host
from nexus_deploy.facts.inventory import read_inventory
from nexus_deploy.suite.prechecks import NODE_PARAMETER, catalogue_files

ROLE = "ROLE"  # the module constant a precheck declares its role in


def declared_role(path: Path) -> str | None:
    """``ROLE = "..."`` at the top level of a precheck file, else None (the platform, once)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    except (OSError, SyntaxError, ValueError):
        return None  # pytest reports an unreadable module on its own when it collects it
    for statement in tree.body:
        if (
            isinstance(statement, ast.Assign)
            and [getattr(t, "id", None) for t in statement.targets] == [ROLE]
            and isinstance(statement.value, ast.Constant)
            and isinstance(statement.value.value, str)
        ):
            return statement.value.value
    return None


@dataclass
class FleetRun:
    """The hosts of one run over a fleet, and each one's profile and testinfra host."""

    profile: TargetProfile
    fleet: Fleet
    profiles: dict[str, TargetProfile] = field(default_factory=dict)
    hosts: dict[str, BoundedHost] = field(default_factory=dict)
    endpoints: tuple[Endpoint, ...] = ()  # every API node's own, verified after activation

    @classmethod
    def read(cls, profile: TargetProfile) -> FleetRun:
        """Read the inventory, make every node's view and resolve how each host is reached:
        all before anything runs; FleetError names what is wrong."""
        spec = profile.fleet
        assert spec is not None
        platform_variables(profile)
        if spec.inventory is not None:
            listing = read_inventory(spec.inventory)
            fleet = fleet_from_listing(spec.inventory, listing, spec.groups)
        else:
            fleet = listed_fleet([(h.name, h.host, h.roles, h.variables) for h in spec.hosts])
        run = cls(profile, fleet, endpoints=node_endpoints(profile, fleet))
        # A host in both roles sees the profile as an API node does (the stricter view).
        for node in sorted(fleet.nodes, key=lambda node: node.role != "api"):
            if node.name not in run.profiles:
                run.profiles[node.name] = node_profile(profile, node, fleet)
                run.hosts[node.name] = run.resolve(node.name)
        return run

    def resolve(self, name: str) -> BoundedHost:
        """The testinfra host ``name`` is, as the inventory (or fleet.hosts) says to reach it."""
        spec = self.profile.fleet
        assert spec is not None
        limit_s, connect_s = self.profiles[name].command_timeout_s, spec.connect_timeout_s
        try:
            if name in self.fleet.specs:
                return listed_host(self.fleet.specs[name], limit_s, connect_s)
            return fleet_host(
                str(self.fleet.inventory), self.fleet.listing, name, limit_s, connect_s
            )
        except Exception as exc:  # each backend fails its own way; none may crash the run
            reason = exc if isinstance(exc, HostCommandError) else type(exc).__name__
            raise FleetError(
                f"{self.fleet.inventory}: host {name}: no way to reach it ({reason})"
            ) from None

    def hosts_of(self, role: str | None) -> list[str]:
        """The names of the hosts a precheck of ``role`` runs on ([] : the platform, once)."""
        return [node.name for node in self.fleet.of_role(role)] if role else []

    def host(self, name: str) -> BoundedHost:
        return self.hosts[name]

    def verified_profile(self) -> TargetProfile:
        """The profile the activation verifies with: the load balancer's endpoints, then
        every API node's own."""
        gateway = self.profile.gateway
        endpoints = (*gateway.endpoints, *self.endpoints)
        return self.profile.model_copy(
            update={"gateway": gateway.model_copy(update={"endpoints": endpoints})}
        )


def read_fleet_run(profile: TargetProfile) -> FleetRun | None:
    """The fleet of ``profile``, read; None for a profile of one host."""
    if profile.fleet is None:
        return None
    return FleetRun.read(profile)


def expected_prechecks(
    names: tuple[str, ...], checks_dir: Path, fleet: FleetRun | None
) -> tuple[str, ...]:
    """Every precheck this run owes, in order: ``DISK``, or ``DISK[api-1]``... on a fleet."""
    if fleet is None:
        return names
    expected: list[str] = []
    for name, path in zip(names, catalogue_files(checks_dir), strict=True):
        role = declared_role(path)
        if role is not None and role not in ROLES:
            raise FleetError(f"{path}: ROLE {role!r} is not a role of a fleet ({', '.join(ROLES)})")
        hosts = fleet.hosts_of(role)
        expected += [f"{name}[{host}]" for host in hosts] if hosts else [name]
    return tuple(expected)


def parametrize_over_hosts(metafunc: pytest.Metafunc, fleet: FleetRun | None) -> None:
    """A host-level precheck runs once per host of its role, its id the host's name."""
    if fleet is None or NODE_PARAMETER not in metafunc.fixturenames:
        return
    # Read as the gate reads it (declared_role), so that the two never disagree.
    role = declared_role(Path(str(metafunc.module.__file__)))
    hosts = fleet.hosts_of(role)
    if hosts:
        metafunc.parametrize(NODE_PARAMETER, hosts, ids=hosts)
