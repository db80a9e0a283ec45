"""An Ansible inventory, read with ``ansible-inventory`` once it is trusted.

An inventory says how each host is reached, and an ssh option there (ProxyCommand) runs a
command here, as the deployer: as Ansible itself does, it is trusted like code. So are the
``group_vars/`` and ``host_vars/`` beside it, which ansible-inventory reads too, and the
ansible.cfg testinfra reads for ssh arguments. Each must be ours or root's, changeable by no
one else, with no symlink on the way (``nexus_deploy.config.trust``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from nexus_deploy.config.fleet import FleetError
from nexus_deploy.config.trust import untrusted_path, untrusted_tree
from nexus_deploy.facts.bounded_host import command_environment

# A dynamic inventory script may take a while; a hung one must not hang the run.
INVENTORY_TIMEOUT_S = 60.0


def read_inventory(inventory: Path) -> dict[str, Any]:
    """``ansible-inventory --list`` of ``inventory``, bounded in time, once it is trusted."""
    if not inventory.is_file():
        raise FleetError(f"{inventory}: no such inventory file")
    problem = untrusted_inventory(inventory)
    if problem:
        raise FleetError(problem)
    command = [ansible_inventory_command(), "--list", "-i", str(inventory)]
    # An inventory ansible cannot parse is an error, not an empty fleet with a warning. The
    # environment holds no secret (an inventory script or plugin would see it).
    environment = {
        **command_environment(),
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
    """Why the inventory, its group_vars/ and host_vars/, or the ansible.cfg in use could be
    changed by someone other than us or root, or None."""
    checks = [
        untrusted_path(inventory, "inventory"),
        *(untrusted_tree(inventory.parent / name, "inventory variables")
          for name in ("group_vars", "host_vars")),
    ]  # fmt: skip
    config = ansible_config_in_use()
    if config is not None:
        checks.append(untrusted_path(config, "ansible configuration"))
    return next((problem for problem in checks if problem), None)


def ansible_config_in_use() -> Path | None:
    """The ansible.cfg testinfra reads ssh arguments from (its order: $ANSIBLE_CONFIG, then
    ./ansible.cfg, ~/.ansible.cfg, /etc/ansible/ansible.cfg), if any."""
    named = os.environ.get("ANSIBLE_CONFIG")
    candidates = [named] if named else []
    candidates += ["ansible.cfg", "~/.ansible.cfg", "/etc/ansible/ansible.cfg"]
    for candidate in candidates:
        path = Path(candidate).expanduser()
        if path.exists():
            return path.absolute()
    return None


def ansible_inventory_command() -> str:
    """ansible-inventory beside our Python (the virtualenv's, not activated), else on PATH."""
    beside = Path(sys.executable).with_name("ansible-inventory")
    return str(beside) if beside.is_file() else "ansible-inventory"
