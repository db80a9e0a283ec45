"""BACKUP: the backup directory is writable with room; the audit directory too."""

from __future__ import annotations

import pytest

from nexus_deploy.facts import host as host_facts
from nexus_deploy.suite.prefetch import Wanted
from nexus_deploy.suite.verdict import no_problems

pytestmark = pytest.mark.precheck
# No ROLE: on a fleet too, checked once, on the profile's host, where the deployer writes its
# restore points and audit logs (see nexus_deploy.suite.fleet).


def wanted_facts(target, config_dir):
    backup, audit = str(target.backup.dir), str(target.audit.dir)
    return Wanted(
        on_host=[
            (host_facts.is_directory, (backup,)),
            (host_facts.is_writable_dir, (backup,)),
            (host_facts.free_gb, (backup,)),
            (host_facts.is_directory, (audit,)),
            (host_facts.is_writable_dir, (audit,)),
        ]
    )


def test_backup(host, target, record_property, prefetch):
    backup, audit = str(target.backup.dir), str(target.audit.dir)
    minimum = target.backup.min_free_gb
    record_property("backup_dir", backup)
    record_property("min_free_gb", minimum)
    problems = []
    if not prefetch.result(host_facts.is_directory, host, backup):
        problems.append(f"backup directory {backup} does not exist")
    elif not prefetch.result(host_facts.is_writable_dir, host, backup):
        problems.append(f"backup directory {backup} is not writable")
    else:
        free = prefetch.result(host_facts.free_gb, host, backup) or 0.0
        record_property("backup_free_gb", round(free, 1))
        if free < minimum:
            problems.append(
                f"backup directory {backup} has {free:.1f} GB free, below {minimum:g} GB"
            )
    audit_exists = prefetch.result(host_facts.is_directory, host, audit)
    audit_ok = audit_exists and prefetch.result(host_facts.is_writable_dir, host, audit)
    record_property("audit_dir_writable", audit_ok)
    if not audit_exists:
        problems.append(f"audit directory {audit} does not exist")
    elif not audit_ok:
        problems.append(f"audit directory {audit} is not writable")
    no_problems(problems)
