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

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROLES = ("api", "db")
# The inventory variable a node overrides profile fields with.
OVERRIDES_VAR = "nexus_overrides"
# "{name}" in a profile string: a variable of the node. Names only: no attribute or index.
VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
# Passwords an inventory may hold (testinfra passes ansible_ssh_pass to sshpass -p).
PASSWORD_VARIABLES = frozenset(
    {"ansible_ssh_pass", "ansible_password", "ansible_become_pass", "ansible_become_password"}
)
# ansible-inventory starts in about 0.3 s; a dynamic inventory script may take longer.
INVENTORY_TIMEOUT_S = 60.0


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


def read_inventory(inventory: Path) -> dict[str, Any]:
    """``ansible-inventory --list`` of ``inventory``, bounded in time, once it is trusted."""
    if not inventory.is_file():
        raise FleetError(f"{inventory}: no such inventory file")
    problem = untrusted_inventory(inventory)
    if problem:
        raise FleetError(f"{inventory}: {problem}")
    command = [ansible_inventory_command(), "--list", "-i", str(inventory)]
    # An inventory ansible cannot parse is an error, not an empty fleet with a warning.
    environment = {
        **os.environ,
        "ANSIBLE_VERBOSITY": "0",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
    }
    try:
        done = subprocess.run(
            command, capture_output=True, timeout=INVENTORY_TIMEOUT_S, env=environment, check=False
        )
    except FileNotFoundError:
        raise FleetError(
            f"{inventory}: ansible-inventory not found (pip install ansible-core)"
        ) from None
    except subprocess.TimeoutExpired:
        raise FleetError(
            f"{inventory}: ansible-inventory gave no answer in {INVENTORY_TIMEOUT_S:g} s"
        ) from None
    if done.returncode != 0:
        # Not ansible's words: they may quote the file's lines, which a refusal never repeats.
        raise FleetError(
            f"{inventory}: not an inventory ansible can read (ansible-inventory exit "
            f"{done.returncode}; `ansible-inventory -i {inventory} --list` says why)"
        )
    try:
        listing = json.loads(done.stdout)
    except ValueError:
        raise FleetError(f"{inventory}: ansible-inventory did not print JSON") from None
    if not isinstance(listing, dict):
        raise FleetError(f"{inventory}: ansible-inventory did not print a mapping")
    return listing


def untrusted_inventory(inventory: Path) -> str | None:
    """Why ``inventory`` may not be trusted, or None. It says how each host is reached, and an
    ssh option there (ProxyCommand) runs a command here, as the deployer: as with Ansible, it
    must be ours (or root's) and writable by no one else."""
    info = inventory.stat()
    if info.st_uid not in (0, os.geteuid()):
        return f"the inventory belongs to uid {info.st_uid}, not to us or root"
    if info.st_mode & 0o022:
        return f"the inventory has mode {info.st_mode & 0o777:04o}: others could change it"
    return None


def ansible_inventory_command() -> str:
    """ansible-inventory beside our Python (the virtualenv's, not activated), else on PATH."""
    beside = Path(sys.executable).with_name("ansible-inventory")
    return str(beside) if beside.is_file() else "ansible-inventory"


def group_hosts(listing: Mapping[str, Any], group: str) -> list[str]:
    """The hosts of ``group`` and of its children, in inventory order, each once."""
    found: list[str] = []
    entry = listing.get(group, {})
    for host in entry.get("hosts", []):
        if host not in found:
            found.append(host)
    for child in entry.get("children", []):
        found += [h for h in group_hosts(listing, child) if h not in found]
    return found


def read_fleet(inventory: Path, groups: Mapping[Any, tuple[str, ...]]) -> Fleet:
    """The fleet ``inventory`` describes, each role played by the hosts of its ``groups``."""
    listing = read_inventory(inventory)
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
    """The profile's fields (``raw``, as model_dump gives them) as ``node`` sees them: its
    overrides merged in, its variables put into strings."""
    overrides = node.variables.get(OVERRIDES_VAR, {})
    if not isinstance(overrides, Mapping):
        raise FleetError(f"{inventory}: host {node.name}: {OVERRIDES_VAR} must be a mapping")
    merged = _merged(raw, overrides)

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return VARIABLE.sub(lambda match: variable(match[1]), value)
        if isinstance(value, Mapping):
            return {key: fill(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [fill(item) for item in value]
        return value

    def variable(name: str) -> str:
        value = node.variables.get(name, node.name if name == "inventory_hostname" else None)
        if value is not None:
            return str(value)
        if node.role == "api":
            raise FleetError(f"{inventory}: host {node.name} has no variable {name}")
        # The sections describe an API node; a database host reads only docker: and database:,
        # which name no variable of an API node's.
        return "{" + name + "}"

    return {key: fill(value) for key, value in merged.items() if key != "fleet"}


def _merged(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged
