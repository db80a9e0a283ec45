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
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nexus_deploy.config.fleet import ROLES, Fleet, FleetError, listed_fleet, read_fleet
from nexus_deploy.config.profile import TargetProfile, node_endpoints, node_profile
from nexus_deploy.facts.bounded_host import BoundedHost, fleet_host, listed_host

ROLE = "ROLE"  # the module constant a precheck declares its role in
NODE_PARAMETER = "node"  # the fixture a host-level precheck is parametrized over


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
    # What ansible-inventory printed, as the key testinfra's resolution of a host is cached by.
    listing_json: str = ""

    @classmethod
    def read(cls, profile: TargetProfile) -> FleetRun:
        """Read the inventory and make every node's view; FleetError names what is wrong."""
        spec = profile.fleet
        assert spec is not None
        if spec.inventory is not None:
            fleet = read_fleet(spec.inventory, spec.groups)
        else:
            fleet = listed_fleet([(h.name, h.host, h.roles, h.variables) for h in spec.hosts])
        run = cls(profile, fleet, listing_json=json.dumps(fleet.listing, sort_keys=True))
        for node in fleet.nodes:
            run.profiles[node.name] = node_profile(profile, node, fleet)
        node_endpoints(profile, fleet)  # refused now, not after the flags are written
        return run

    def hosts_of(self, role: str | None) -> list[str]:
        """The names of the hosts a precheck of ``role`` runs on ([] : the platform, once)."""
        return [node.name for node in self.fleet.of_role(role)] if role else []

    def host(self, name: str) -> BoundedHost:
        spec = self.profile.fleet
        assert spec is not None
        if name in self.fleet.specs:
            return listed_host(
                self.fleet.specs[name],
                self.profiles[name].command_timeout_s,
                spec.connect_timeout_s,
            )
        return fleet_host(
            str(self.fleet.inventory),
            self.listing_json,
            name,
            self.profiles[name].command_timeout_s,
            spec.connect_timeout_s,
        )

    def verified_profile(self) -> TargetProfile:
        """The profile the activation verifies with: the load balancer's endpoints, then
        every API node's own."""
        gateway = self.profile.gateway
        endpoints = (*gateway.endpoints, *node_endpoints(self.profile, self.fleet))
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
    for number, name in enumerate(names, start=1):
        (path,) = checks_dir.glob(f"test_{number:02d}_*.py")
        role = declared_role(path)
        if role is not None and role not in ROLES:
            raise FleetError(f"{path}: ROLE {role!r} is not a role of a fleet ({', '.join(ROLES)})")
        hosts = fleet.hosts_of(role)
        expected += [f"{name}[{host}]" for host in hosts] if hosts else [name]
    return tuple(expected)


def host_of(item: pytest.Item) -> str | None:
    """The host a precheck item runs on, if it was parametrized over hosts."""
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    host = callspec.params.get(NODE_PARAMETER)
    return str(host) if host is not None else None


def parametrize_over_hosts(metafunc: pytest.Metafunc, fleet: FleetRun | None) -> None:
    """A host-level precheck runs once per host of its role, its id the host's name."""
    if fleet is None or NODE_PARAMETER not in metafunc.fixturenames:
        return
    role = getattr(metafunc.module, ROLE, None)
    hosts = fleet.hosts_of(role) if isinstance(role, str) else []
    if hosts:
        metafunc.parametrize(NODE_PARAMETER, hosts, ids=hosts)
