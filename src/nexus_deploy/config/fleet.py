"""A fleet: the hosts of an Ansible inventory, by role, and each node's view of the profile.

A target profile with a ``fleet:`` section describes several machines. The inventory (any
format ``ansible-inventory`` reads) names the hosts and how to reach them; ``fleet.groups`` says
which inventory groups play each role:

- ``api``: the API nodes behind the load balancer (nginx, the gateway, a checkout, certificates);
- ``db``: where the platform database and its Docker engine run.

A precheck module says which role it concerns (``ROLE = "api"``); one without a ROLE checks the
platform once. The profile's sections describe an API node (the database host reads only
``docker:`` and ``database:`` of them). A string in them may name the node's inventory
variables (``"{ansible_host}:443"``, ``"127.0.0.1:{nexus_https_port}"``), and a node may
override fields with a mapping in its ``nexus_overrides`` variable (a node with a smaller disk,
say). ``node_profile`` makes that node's view.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testinfra.utils.ansible_runner import itergroup

ROLES = ("api", "db")
# The inventory variable a node overrides profile fields with.
OVERRIDES_VAR = "nexus_overrides"
# "{name}" in a profile string: a variable of the node. Names only: no attribute or index.
VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
# A node's own fields: what its host-level prechecks read. The rest (the database, the audit,
# the backup and config directories, the load balancer's endpoints) is the platform's, one for
# every node, and what the activation uses: no node may see it otherwise.
NODE_FIELDS = (
    "command_timeout_s", "system", "services", "docker", "disk", "memory", "repository",
    "security", "gateway.local_url",
)  # fmt: skip
_SHOWABLE = re.compile(r"[a-z_.0-9]{1,64}")
# Passwords an inventory may hold (testinfra passes ansible_ssh_pass to sshpass -p).
PASSWORD_VARIABLES = frozenset(
    {"ansible_ssh_pass", "ansible_password", "ansible_become_pass", "ansible_become_password"}
)


class FleetError(Exception):
    """The inventory cannot be read or does not give each role its hosts; names file, group
    or host, never a variable's value."""


@dataclass(frozen=True)
class Node:
    """One host of the fleet in one role."""

    name: str
    role: str
    variables: Mapping[str, Any]


@dataclass(frozen=True)
class Fleet:
    # Where the hosts come from, for messages: the inventory's path, or "fleet.hosts".
    inventory: Path | str
    nodes: tuple[Node, ...]
    # What ansible-inventory printed: testinfra resolves each host's connection from it.
    listing: Mapping[str, Any]
    # The testinfra spec of each host listed in the profile itself (none from an inventory).
    specs: Mapping[str, str] = field(default_factory=dict)

    def of_role(self, role: str) -> tuple[Node, ...]:
        return tuple(node for node in self.nodes if node.role == role)


def group_hosts(listing: Mapping[str, Any], group: str) -> list[str]:
    """The hosts of ``group`` and of its children, in inventory order, each once."""
    return list(dict.fromkeys(itergroup(dict(listing), group)))


def fleet_from_listing(
    inventory: Path, listing: Mapping[str, Any], groups: Mapping[Any, tuple[str, ...]]
) -> Fleet:
    """The fleet an inventory describes (``listing``: what ansible-inventory printed of it),
    each role played by the hosts of its ``groups``."""
    hostvars = listing.get("_meta", {}).get("hostvars", {})
    nodes = []
    for role in ROLES:
        names: list[str] = []
        for group in groups.get(role, ()):
            if group not in listing:
                raise FleetError(f"{inventory}: no group {group!r} (fleet.groups.{role})")
            names += [h for h in group_hosts(listing, group) if h not in names]
        if not names:
            raise FleetError(f"{inventory}: no host plays the role {role} (fleet.groups.{role})")
        for name in names:
            if not _HOST_NAME.fullmatch(name):
                # It becomes a test id and an audit field.
                raise FleetError(f"{inventory}: a host name in group {role} is not a plain name")
            variables = hostvars.get(name, {})
            secret = sorted(PASSWORD_VARIABLES & set(variables))
            if secret:
                # testinfra would hand it to sshpass on a command line, visible to every user.
                raise FleetError(
                    f"{inventory}: host {name} has a password ({', '.join(secret)}): use an "
                    "ssh key or agent"
                )
            nodes.append(Node(name, role, variables))
    return Fleet(inventory, tuple(nodes), listing)


def listed_fleet(hosts: list[tuple[str, str, tuple[str, ...], Mapping[str, Any]]]) -> Fleet:
    """The fleet a profile lists itself: (name, testinfra spec, roles, variables) per host."""
    nodes = [
        Node(name, role, variables)
        for role in ROLES
        for name, _, roles, variables in hosts
        if role in roles
    ]
    for role in ROLES:
        if not any(node.role == role for node in nodes):
            raise FleetError(f"fleet.hosts: no host plays the role {role}")
    specs = {name: spec for name, spec, _, _ in hosts}
    return Fleet("fleet.hosts", tuple(nodes), {}, specs)


def node_view(raw: Mapping[str, Any], node: Node, inventory: Path | str) -> dict[str, Any]:
    """The profile's fields (``raw``, as model_dump(mode="json") gives them) as ``node`` sees
    them: its overrides merged in, its variables put into strings; both in a node's own fields
    only (NODE_FIELDS): the database, the audit and the rest are the platform's, one for all."""
    overrides = node.variables.get(OVERRIDES_VAR, {})
    if not isinstance(overrides, Mapping):
        raise FleetError(f"{inventory}: host {node.name}: {OVERRIDES_VAR} must be a mapping")
    foreign = [path for path in _paths(overrides) if not is_node_field(path)]
    if foreign:
        shown = foreign[0] if _SHOWABLE.fullmatch(foreign[0]) else "a field"
        raise FleetError(
            f"{inventory}: host {node.name}: {OVERRIDES_VAR} may change a node's own fields "
            f"only, not {shown}"
        )
    view = {key: value for key, value in _merged(raw, overrides).items() if key != "fleet"}
    for section in NODE_FIELDS:
        head, _, leaf = section.partition(".")
        if head in view and not leaf:
            view[head] = filled(view[head], node, inventory)
        elif isinstance(view.get(head), Mapping) and leaf in view[head]:
            view[head] = {**view[head], leaf: filled(view[head][leaf], node, inventory)}
    return view


def filled(value: Any, node: Node, inventory: Path | str) -> Any:
    """``value`` with every ``{variable}`` in its strings replaced by ``node``'s."""
    if isinstance(value, str):
        return VARIABLE.sub(lambda match: _variable(match[1], node, inventory), value)
    if isinstance(value, Mapping):
        return {key: filled(item, node, inventory) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [filled(item, node, inventory) for item in value]
    return value


def _variable(name: str, node: Node, inventory: Path | str) -> str:
    value = node.variables.get(name, node.name if name == "inventory_hostname" else None)
    if value is not None:
        return str(value)
    if node.role == "api":
        raise FleetError(f"{inventory}: host {node.name} has no variable {name}")
    # The fields describe an API node; a database host reads only docker: of them, which names
    # no variable of an API node's.
    return "{" + name + "}"


def is_node_field(dotted: str) -> bool:
    """Whether the field ``dotted`` (disk.min_free_gb) is a node's own: see NODE_FIELDS."""
    return any(dotted == field or dotted.startswith(field + ".") for field in NODE_FIELDS)


def fields_naming_variables(raw: Mapping[str, Any]) -> list[str]:
    """The dotted fields of ``raw`` whose strings name a variable (``{ansible_host}``)."""
    return [
        path for path, value in _leaves(raw) if isinstance(value, str) and VARIABLE.search(value)
    ]


def _leaves(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, Mapping):
        return [leaf for key, item in value.items() for leaf in _leaves(item, f"{prefix}{key}.")]
    if isinstance(value, list | tuple):
        return [leaf for i, item in enumerate(value) for leaf in _leaves(item, f"{prefix}{i}.")]
    return [(prefix.rstrip("."), value)]


def _paths(overrides: Mapping[str, Any]) -> list[str]:
    return [path for path, _ in _leaves(overrides)]


def _merged(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged
