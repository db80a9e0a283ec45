"""Everything a run needs decided before its first test: profile, request, paths.

Each refusal here is a usage error (exit 4) with a DEPLOYMENT_REFUSED audit line (or, where
no audit log can be written at all, a message that says so), before anything is checked or
changed.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nexus_deploy import phases
from nexus_deploy.audit import anchor
from nexus_deploy.change.request import ActivationRequest, parse_request
from nexus_deploy.config.auditkey import AuditKeyError, load_audit_key
from nexus_deploy.config.fleet import FleetError
from nexus_deploy.config.profile import ProfileError, load_profile
from nexus_deploy.config.targets import resolve_target_path
from nexus_deploy.phases import RegistryError
from nexus_deploy.phases.base import RequestError
from nexus_deploy.runid import new_run_id
from nexus_deploy.suite import record, report_page
from nexus_deploy.suite.files import RunFiles, open_audit
from nexus_deploy.suite.fleet import expected_prechecks, read_fleet_run
from nexus_deploy.suite.prechecks import CHECKS_DIR, CatalogueError, catalogue
from nexus_deploy.suite.prefetch import PREFETCH_KEY, Prefetch
from nexus_deploy.suite.run import DeploymentRun


def build_run(config: pytest.Config, listing: bool = False) -> DeploymentRun:
    """The run this pytest session is, or a pytest.UsageError saying why it cannot be one.
    A run that only lists its tests (``listing``) writes no report: where they would go is not
    its concern."""
    if config.inipath is None:
        # pytest picks its rootdir before it knows our options, so in `--target /x/t.yaml` it
        # takes /x/t.yaml for a test path and leaves the repository (and pyproject.toml) behind.
        raise pytest.UsageError(
            f"nexus-deploy: no pytest configuration found (rootdir {config.rootpath}); "
            "give files as --target=FILE and --reports-dir=DIR, with '='"
        )
    run_id = new_run_id()
    reports_dir = config.option.nexus_reports_dir or config.rootpath / "reports"
    files = RunFiles.under(Path(reports_dir).resolve(), run_id)
    profile_path = resolve_target_path(config.option.nexus_target, config.rootpath)
    try:
        profile = load_profile(profile_path)
    except ProfileError as exc:
        raise pytest.UsageError(
            "target profile refused: " + refuse(files, run_id, files.run_dir, str(exc), not listing)
        ) from None
    refused = Refusal(files, run_id, profile.audit.dir, report=not listing)
    audit_key = None
    if profile.audit.key_file is not None:
        try:
            audit_key = load_audit_key(profile.audit.key_file, profile.audit.dir)
        except AuditKeyError as exc:
            reason = f"{profile_path}: audit.key_file: {exc}"
            raise pytest.UsageError(refused(reason, report=True)) from None
    # From here on a refusal's log is keyed and anchored, as a run's is.
    refused.key, refused.anchor_file = audit_key, profile.audit.anchor_file
    problem = None if listing else reports_dir_problem(files)
    if problem:
        raise pytest.UsageError(refused(problem, report=False))
    config_dir = config.rootpath / profile.config.dir
    if getattr(config.option, "numprocesses", None) or getattr(config.option, "dist", "no") != "no":
        reason = "nexus-deploy runs in one process: prechecks, gate and activation share it"
        asked = "activation refused: " if config.option.nexus_activate else ""
        raise pytest.UsageError(asked + refused(reason + "; drop -n/--dist"))
    try:
        prechecks = catalogue(config.rootpath / CHECKS_DIR)
    except CatalogueError as exc:
        raise pytest.UsageError(refused(str(exc))) from None
    try:
        request = request_from_options(config.option, config_dir)
    except (RequestError, RegistryError) as exc:
        raise pytest.UsageError("activation refused: " + refused(str(exc))) from None
    try:
        fleet = read_fleet_run(profile)
        expected = expected_prechecks(prechecks, config.rootpath / CHECKS_DIR, fleet)
    except FleetError as exc:
        raise pytest.UsageError(refused(f"{profile_path}: fleet: {exc}")) from None
    prefetch = config.stash.get(PREFETCH_KEY, None)
    if fleet is not None and prefetch is None:
        assert profile.fleet is not None
        prefetch = Prefetch(profile.fleet.workers)
    return DeploymentRun(
        run_id, profile, profile_path, files, prechecks, request, config_dir, prefetch,
        audit_key, fleet, expected,
    )  # fmt: skip


def request_from_options(option: Any, config_dir: Path) -> ActivationRequest | None:
    """The activation asked for on the command line, validated before anything runs."""
    given = {o.flag: getattr(option, o.dest, None) for o in phases.all_options()}
    return parse_request(
        option.nexus_activate,
        given,
        option.nexus_plan,
        option.nexus_force_soak,
        option.nexus_lock_timeout,
        config_dir,
        option.nexus_emergency,
        option.nexus_prepare,
    )


def reports_dir_problem(files: RunFiles) -> str | None:
    """Why the run could not write its reports there, found before anything is written."""
    reports = files.run_dir.parent
    existing = reports
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"reports directory {reports} cannot be made: {existing} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):  # a read-only mount, for root as well
        return f"reports directory {reports} cannot be written: {existing} is read-only to us"
    if files.latest.exists() and not files.latest.is_symlink():
        return f"{files.latest} is not a link (each run points it at itself): move it away"
    return None


@dataclass
class Refusal:
    """How this run audits a refusal before any check: where, whether it leaves a report, and,
    once the profile's audit key is known, keyed and anchored as a run's log is."""

    files: RunFiles
    run_id: str
    audit_dir: Path
    report: bool
    key: bytes | None = None
    anchor_file: Path | None = None

    def __call__(self, reason: str, report: bool | None = None) -> str:
        return refuse(
            self.files, self.run_id, self.audit_dir, reason,
            self.report if report is None else report, self.key, self.anchor_file,
        )  # fmt: skip


def refuse(
    files: RunFiles,
    run_id: str,
    audit_dir: Path,
    reason: str,
    report: bool = True,
    key: bytes | None = None,
    anchor_file: Path | None = None,
) -> str:
    """Audit a run refused before any check (in the run folder if the audit dir is unusable)
    and, unless it only lists or cannot write there, leave its REFUSED report; return the
    message for the operator, naming the audit file."""
    try:
        audit, _ = open_audit(audit_dir, files.run_dir, f"precheck-{run_id}.log", key)
    except OSError as exc:  # neither the audit dir nor the run folder can hold it
        return f"{reason} (not audited: {exc})"
    audit.write("DEPLOYMENT_START", run_id=run_id)
    audit.write("DEPLOYMENT_REFUSED", reason=reason)
    audit.write("DEPLOYMENT_COMPLETE", duration=0, status="refused")
    audit.close()
    if anchor_file is not None and audit.final_hmac is not None:
        with contextlib.suppress(OSError):  # the log itself is written; `audit verify` says so
            anchor(anchor_file, audit.path, audit.final_hmac)
    if report and reports_dir_problem(files) is None:
        with contextlib.suppress(OSError):  # the audit line is the record that must exist
            data = record.refusal_data(run_id, reason, audit.path)
            files.run_dir.mkdir(parents=True, exist_ok=True)
            record.write_summary(files.run_dir, data)
            files.html.write_text(report_page.refusal_page(data), encoding="utf-8")
            record.rebuild_index(files.run_dir.parent)
    return f"{reason} (audited in {audit.path})"
