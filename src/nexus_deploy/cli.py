"""nexusctl: the operator's words on top of the deployment suite.

Every command that checks or changes the platform runs the same pytest suite (so the same
prechecks, gate, lock, audit and reports); the rest read what the runs left behind.
Exit codes: pytest's for precheck, marketplace and launch (0 done, 1 a check failed or the
activation was refused, 4 usage); the rollback script's for rollback (0 restored, 3 lock held,
4 flags changed since); 2 for nexusctl's own usage errors; 1 for a broken audit log.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import stat
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg

from nexus_deploy import __version__, audit, db, phases
from nexus_deploy.audit import AuditLog, anchor
from nexus_deploy.change import restore_point
from nexus_deploy.change.flags import decoded, read_rows
from nexus_deploy.change.lock import DeploymentLock, LockDenied, holder_of, host_lock_content
from nexus_deploy.change.refusal import Refused
from nexus_deploy.config.auditkey import AuditKeyError, load_audit_key
from nexus_deploy.config.profile import ProfileError, TargetProfile, load_profile
from nexus_deploy.config.targets import resolve_target_path
from nexus_deploy.phases.base import SuiteArguments
from nexus_deploy.runid import is_run_id, new_run_id, operator
from nexus_deploy.values import to_json

ROOT_ENV_VAR = "NEXUS_DEPLOY_ROOT"


def deployer_root() -> Path:
    """Where conftest.py, checks/ and pfs/ live: $NEXUS_DEPLOY_ROOT, else this checkout."""
    if os.environ.get(ROOT_ENV_VAR):
        return Path(os.environ[ROOT_ENV_VAR]).resolve()
    return Path(__file__).resolve().parents[2]


def run_suite(args: argparse.Namespace, *pytest_args: str) -> int:
    """Run the deployment suite; options as --opt=value so pytest keeps its rootdir."""
    command = [sys.executable, "-m", "pytest", *pytest_args]
    if args.target:
        command.append(f"--target={args.target}")
    if args.reports_dir:
        command.append(f"--reports-dir={Path(args.reports_dir).resolve()}")
    command += args.pytest_args
    return subprocess.call(command, cwd=deployer_root())


def plans_only(args: argparse.Namespace) -> bool:
    """Whether this command only plans: --plan, or a command the runbook writes with --confirm
    (the launch) given without it. An emergency always applies."""
    if args.plan:
        return True
    return args.needs_confirm and not args.confirm and getattr(args, "emergency", None) is None


def activation_args(args: argparse.Namespace) -> list[str]:
    extra = ["--plan"] if plans_only(args) else []
    if getattr(args, "emergency", None) is not None:
        extra.append(f"--emergency={args.emergency}")
    if getattr(args, "force_soak", False):
        extra.append("--force-soak")
    if args.lock_timeout is not None:
        extra.append(f"--lock-timeout={args.lock_timeout}")
    return extra


def cmd_precheck(args: argparse.Namespace) -> int:
    return run_suite(args, "-m", "precheck")


def cmd_activate(args: argparse.Namespace) -> int:
    """A phase's command (marketplace, launch...): the pytest arguments its phase gives."""
    code = run_suite(args, *args.suite_arguments(args), *activation_args(args))
    if plans_only(args) and not args.plan:
        print(
            "nexusctl: plan only, nothing was changed. To apply it: "
            f"nexusctl {' '.join(args.words)} --confirm",
            file=sys.stderr,
        )
    return code


def profile_of(args: argparse.Namespace) -> TargetProfile:
    return load_profile(resolve_target_path(args.target, deployer_root()))


def cmd_status(args: argparse.Namespace) -> int:
    profile = profile_of(args)
    spec = profile.database
    try:
        with db.connect(spec, autocommit=True) as connection:
            flags = decoded(read_rows(connection, spec.flag_table))
            holder = holder_of(connection, profile.audit.dir / ".deploy.lock")
    except psycopg.Error as exc:
        where = f"{spec.host}:{spec.port}/{spec.dbname}"
        print(f"nexusctl: cannot read flags from {where}: {exc}", file=sys.stderr)
        return 1
    # Keys, values and the holder come from the database: a terminal escape in one is shown,
    # not obeyed.
    lines = [f"{'target':<13}: {profile.name}"]
    for phase in phases.registered().values():
        lines += [f"{label:<13}: {value}" for label, value in phase.status(flags)]
    lines.append(f"{'lock':<13}: {holder if holder.held else 'free'}")
    lines += [f"  {key} = {to_json(flags[key])}" for key in sorted(flags)]
    for line in lines:
        print(audit.escape_controls(line))
    return 0


NOT_A_RUN_ID = "is not a run id (YYYYMMDDTHHMMSSZ-xxxx)"


def cmd_rollback(args: argparse.Namespace) -> int:
    profile = profile_of(args)
    # What the refusal's audit log says was asked: a run id that is not one is never repeated.
    request = "restore to" if args.to is not None else "rollback"
    given = args.to if args.to is not None else args.run_id
    if given:
        request += f" {given}" if is_run_id(given) else " (not a run id)"
    if args.to is not None and args.run_id:
        return refuse(profile, request, "give RUN_ID or --to RUN_ID, not both", 2)
    if given and not is_run_id(given):  # it becomes part of a path; it may hold anything
        option = "--to RUN_ID" if args.to is not None else "RUN_ID"
        return refuse(profile, request, f"rollback: the {option} given {NOT_A_RUN_ID}", 2)
    if args.to is not None:
        return cmd_restore_to(args, profile, request)
    audit_dir = profile.audit.dir
    if args.run_id:
        scripts = [audit_dir / f"rollback-{args.run_id}.sh"]
        wanted = scripts[0].name
    else:
        # The newest run whose changes are live, as the database says: its rows carry the
        # run's name. Not the scripts' STATUS lines: a run killed after COMMIT still says
        # "pending", and one whose COMMIT never happened has nothing to undo.
        try:
            live = runs_live_in_database(profile)
        except psycopg.Error as exc:
            where = profile.database
            reason = (
                f"cannot tell which run's changes are live: {where.host}:{where.port}"
                f"/{where.dbname}: {' '.join(str(exc).split())[:200]}; give the RUN_ID"
            )
            return refuse(profile, request, reason, 1)
        # Newest by when its rows were written (run ids of one second do not sort by time).
        scripts = sorted(
            (
                s
                for s in audit_dir.glob("rollback-*.sh")
                if s.stem.removeprefix("rollback-") in live
            ),
            key=lambda s: live[s.stem.removeprefix("rollback-")],
        )
        wanted = "rollback script of a run whose changes are live"
    if not scripts or not scripts[-1].is_file():
        return refuse(profile, request, f"no {wanted} in {audit_dir}", 2)
    script = scripts[-1]
    untrusted = script_problem(script)
    if untrusted is not None:  # bash runs it as root: only the file the deployer wrote
        return refuse(profile, request, f"{script} not run: {untrusted}", 1)
    print(f"nexusctl: running {script} (deployment status {script_status(script)})")
    return subprocess.call(["bash", str(script), *(["--force"] if args.force else [])])


def runs_live_in_database(profile: TargetProfile) -> dict[str, str]:
    """The run ids whose writes are in the flag table now (each row names its writer), each
    with when it wrote its newest row there."""
    spec = profile.database
    with db.connect(spec, autocommit=True) as connection:
        rows = read_rows(connection, spec.flag_table)
    live: dict[str, str] = {}
    for row in rows.values():
        author = row.updated_by.removeprefix("nexus-deploy ")
        if author != row.updated_by and author.startswith("run="):
            run_id = author.split()[0].removeprefix("run=")
            live[run_id] = max(live.get(run_id, ""), row.updated_at)
    return live


def script_problem(script: Path) -> str | None:
    """Why a rollback script is not the one its run's audit log recorded, or None. The log's
    chain must be intact and its last sha256 of the script must match the file."""
    run_id = script.stem.removeprefix("rollback-")
    for written in (script.with_suffix(".log"), script.with_name(".deploy.lock")):
        if written.is_symlink():  # the script refuses it too, but could audit that nowhere
            return f"{written} is a symlink (a rollback never writes through one)"
    log = script.with_name(f"deployment-{run_id}.log")
    if not_a_file(log) is not None:
        return f"its run's audit log {log.name} is missing"
    result = audit.verify(log)
    if not result.intact:
        return f"its run's audit log is broken ({result.problems[0]})"
    recorded = [
        audit.parse_fields(line).get("sha256")
        for line in log.read_text(encoding="utf-8").splitlines()
        if " ROLLBACK_WRITTEN " in line or " ROLLBACK_FINAL " in line
    ]
    if not recorded or recorded[-1] is None:
        return "its run's audit log records no sha256 of it"
    actual = hashlib.sha256(script.read_bytes()).hexdigest()
    if actual != recorded[-1]:
        return (
            f"it changed since the deployer wrote it (sha256 {actual[:12]}..., "
            f"audited {recorded[-1][:12]}...)"
        )
    return None


class NexusctlRun:
    """A run of nexusctl's own (a restore, a refusal): deployment-<run id>.log in the profile's
    audit directory, keyed with the profile's key and, once closed, anchored, as the suite's."""

    def __init__(self, profile: TargetProfile, request: str, key: bytes | None) -> None:
        self.profile = profile
        self.run_id, self.started = new_run_id(), time.monotonic()
        self.log = AuditLog(profile.audit.dir / f"deployment-{self.run_id}.log", key)
        self.log.write(
            "DEPLOYMENT_START", timestamp=int(time.time()), run_id=self.run_id,
            version=__version__, target=profile.name, request=request, operator=operator(),
        )  # fmt: skip

    def close(self, status: str) -> None:
        duration = round(time.monotonic() - self.started, 2)
        self.log.write("DEPLOYMENT_COMPLETE", duration=duration, status=status)
        self.log.close()
        anchor_file = self.profile.audit.anchor_file
        if anchor_file is not None and self.log.final_hmac is not None:
            anchor(anchor_file, self.log.path, self.log.final_hmac)


def refuse(profile: TargetProfile, request: str, reason: str, code: int) -> int:
    """Refuse a rollback before anything runs: the reason on stderr and in an audit log of its
    own (DEPLOYMENT_REFUSED, status=refused, as the suite audits a run it refuses at startup).
    ``reason`` never holds what was given unchecked. Returns ``code``, the exit code."""
    note = ""
    try:
        key = audit_key_of(profile)
    except AuditKeyError as exc:  # the refusal is recorded all the same, unkeyed
        key, note = None, f"; without the audit key: {exc}"
    try:
        run = NexusctlRun(profile, request, key)
        run.log.write("DEPLOYMENT_REFUSED", reason=reason)
        run.close("refused")
    except OSError as exc:
        print(f"nexusctl: {reason} (not audited: {exc.strerror or exc})", file=sys.stderr)
        return code
    print(f"nexusctl: {reason} (audited in {run.log.path}{note})", file=sys.stderr)
    return code


def lock_timeout_of(args: argparse.Namespace) -> float | None:
    """--lock-timeout in seconds (0 when not given), or None when it is not 0..3600 seconds."""
    try:
        seconds = float(args.lock_timeout or 0)
    except ValueError:
        return None
    return seconds if 0 <= seconds <= 3600 else None


def cmd_restore_to(args: argparse.Namespace, profile: TargetProfile, request: str) -> int:
    """The whole flag table back to run RUN_ID's restore point, audited as a deployment of its
    own, which first saves the table as it is (so `rollback --to` that run undoes this)."""
    try:
        point = restore_point.files_of(profile.backup.dir, args.to)
    except Refused as exc:
        return refuse(profile, request, f"rollback --to: {exc}", 2)
    if not point.state.is_file():
        reason = f"no restore point {point.state.name} in {profile.backup.dir}"
        return refuse(profile, request, reason, 2)
    timeout = lock_timeout_of(args)
    if timeout is None:  # the value given is not repeated
        return refuse(profile, request, "--lock-timeout: give seconds between 0 and 3600", 2)
    try:
        key = audit_key_of(profile)
    except AuditKeyError as exc:
        return refuse(profile, request, str(exc), 2)
    run = NexusctlRun(profile, request, key)
    run_id, log = run.run_id, run.log
    lock_file = profile.audit.dir / ".deploy.lock"
    by = f"nexus-deploy run={run_id} operator={operator()}"
    code, status = 1, "failed"
    try:
        with db.connect(profile.database, autocommit=True) as connection:
            lock = DeploymentLock(connection, lock_file, {"run_id": run_id})
            lock.acquire(timeout)
            log.write("LOCK_ACQUIRED", pid=os.getpid(), timestamp=int(time.time()))
            try:
                saved, changed = restore_point.restore_table(
                    connection, point, profile.backup.dir, run_id, profile.database,
                    lock_file, log, by, profile.audit,
                )  # fmt: skip
            finally:
                lock.release()
                log.write("LOCK_RELEASED", run_id=run_id)
        log.write("RESTORE_COMPLETE", to=args.to, changed=changed)
        print(
            f"nexusctl: the flag table is back at restore point {args.to} ({changed} rows "
            f"changed); the table as it was is restore point {saved.run_id}: "
            f"nexusctl rollback --to {saved.run_id} undoes this"
        )
        code, status = 0, "success"
    except LockDenied as denied:
        log.write("LOCK_DENIED", holder=str(denied))
        print(f"nexusctl: another deployment holds the lock: {denied}", file=sys.stderr)
        code = 3
    except (Refused, psycopg.Error, OSError) as exc:
        reason = " ".join(str(exc).split())[:300]
        log.write("RESTORE_FAILED", reason=reason)
        print(f"nexusctl: restore to {args.to} failed, nothing changed: {reason}", file=sys.stderr)
    finally:
        run.close(status)
    return code


def script_status(script: Path) -> str:
    """The STATUS line the deployer wrote into a rollback script."""
    for line in script.read_text(encoding="utf-8").splitlines():
        if line.startswith("STATUS="):
            return line.split("=", 1)[1].split()[0]
    return "unknown"


NO_SUCH_FILE = "no such file"
A_DIRECTORY = "a directory, not an audit log"


def not_a_file(path: Path) -> str | None:
    """Why no audit log can be read at `path`, or None for a regular file."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return NO_SUCH_FILE
    except OSError as exc:  # a parent directory we may not search, a symlink loop...
        return f"cannot read: {exc.strerror or exc}"
    if stat.S_ISDIR(mode):
        return A_DIRECTORY
    return None if stat.S_ISREG(mode) else "not a regular file"  # a FIFO would block a read


def audit_key_of(profile: TargetProfile) -> bytes | None:
    """The profile's audit key, checked (AuditKeyError), or None for a profile without one."""
    if profile.audit.key_file is None:
        return None
    return load_audit_key(profile.audit.key_file, profile.audit.dir)


def verification_key(args: argparse.Namespace) -> tuple[bytes | None, Path | None, str]:
    """The key and anchors to verify with (--key/--anchors, else the profile's), and a word on
    how the logs were checked."""
    key: bytes | None
    try:
        if args.key:
            key = load_audit_key(Path(args.key), Path(args.files[0]).parent)
            anchors = Path(args.anchors) if args.anchors else None
        else:
            profile = profile_of(args)
            key, anchors = audit_key_of(profile), profile.audit.anchor_file
    except AuditKeyError as exc:
        return None, None, f"chain only: {exc}"
    except ProfileError:
        return None, None, "chain only (no profile, no --key)"
    if key is None:
        return None, None, "chain only (no audit key)"
    return key, anchors, "keyed" + (", anchored" if anchors else "")


def cmd_audit_verify(args: argparse.Namespace) -> int:
    key, anchors, how = verification_key(args)
    if key is None:
        print(f"nexusctl: {how}", file=sys.stderr)
    broken = 0
    for name in args.files:
        path = Path(name)
        problem = not_a_file(path)
        if problem is not None:
            broken += 1
            if problem == NO_SUCH_FILE:
                print(f"MISSING  {path}")
            elif problem == A_DIRECTORY:  # FILE... is what verify takes; the shell names them
                print(f"DIRECTORY {path}: {problem} (try {path}/*.log)")
            else:
                print(f"BROKEN   {path}: {problem}")
            continue
        result = audit.verify(path, key, anchors)
        if not result.intact:
            broken += 1
            print(f"BROKEN   {result.problems[0]}")
        elif not result.complete:
            # Cut short, or a run still going: either way not a finished record.
            broken += 1
            print(f"INCOMPLETE {path}: {result.lines} lines, last event {result.last_event}")
        else:
            checked = (
                "chain only" if key is None
                else how if result.keyed
                else "chain only: written without a key"
            )  # fmt: skip
            print(f"OK       {path}: {result.lines} lines, complete ({checked})")
    return 1 if broken else 0


def cmd_history(args: argparse.Namespace) -> int:
    audit_dir = profile_of(args).audit.dir
    found = sorted(audit_dir.glob("*.log"), key=lambda p: p.name.split("-", 1)[-1])
    # A directory (or FIFO) named like a log is no run: name it after the runs, don't read it.
    skipped = {path: problem for path in found if (problem := not_a_file(path))}
    logs = [path for path in found if path not in skipped]
    if not logs:
        print(f"no runs recorded in {audit_dir}")
    running = running_run(profile_of(args))
    broken = 0
    for path in logs:
        result = audit.verify(path)
        broken += not result.intact
        print(history_row(path, result, running))
        if not result.intact:
            print(f"    {result.problems[0]}")
    for path, problem in skipped.items():
        print(f"skipped  {path}: {problem}")
    return 1 if broken else 0


def running_run(profile: TargetProfile) -> str | None:
    """The run id holding the deployment lock now, if the lock file says and the lock is held."""
    content = host_lock_content(profile.audit.dir / ".deploy.lock")  # None: nobody holds it
    try:
        return str(json.loads(content or "null").get("run_id")) or None
    except (ValueError, AttributeError):
        return None


def history_row(path: Path, result: audit.Verification, running: str | None = None) -> str:
    """One run: its id and kind, how its log ends, how it went and what it was asked to do.
    A log that never ended is a run still going (it holds the lock) or a killed one."""
    kind, _, run_id = path.stem.partition("-")
    chain = "intact" if result.intact else "BROKEN"
    status = result.status or (
        "-" if not result.intact else "running" if run_id == running else "killed"
    )
    # Quoted as in the log: "phase3 step 2" stays one word for whoever splits the row.
    request = audit.format_value("request", result.request) if result.request else "-"
    return (
        f"{run_id:<24} {kind:<11} last={result.last_event or '-':<22} chain={chain:<6} "
        f"status={status:<8} request={request}"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nexusctl",
        description="Check and activate Nexus COS phases through the nexus-deploy suite.",
        epilog="A phase command applies as written (--plan: the diff only), except where it "
        "takes --confirm: then it only plans without it. --target and --reports-dir go before "
        "or after the command.",
    )
    _global_options(parser, given_after_the_command=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    precheck = commands.add_parser("precheck", help="run the prechecks")
    precheck.set_defaults(run=cmd_precheck)

    for phase in phases.registered().values():
        phase.add_commands(commands, _activation_options)

    status = commands.add_parser("status", help="current phase flags and lock holder")
    status.set_defaults(run=cmd_status)
    rollback = commands.add_parser("rollback", help="run a deployment's rollback script")
    rollback.add_argument("run_id", nargs="?", metavar="RUN_ID", help="default: the newest")
    rollback.add_argument("--force", action="store_true", help="restore even after drift")
    rollback.add_argument(
        "--to",
        metavar="RUN_ID",
        help="put the whole flag table back to that run's restore point (itself saved first)",
    )
    rollback.add_argument("--lock-timeout", metavar="SECONDS", help="wait for another deployment")
    rollback.set_defaults(run=cmd_rollback)

    audit_cmd = commands.add_parser("audit", help="audit log tools")
    audit_actions = audit_cmd.add_subparsers(dest="action", required=True, metavar="ACTION")
    verify = audit_actions.add_parser("verify", help="check the hash chain of audit logs")
    verify.add_argument("files", nargs="+", metavar="FILE")
    verify.add_argument("--key", metavar="FILE", help="the audit key (default: the profile's)")
    verify.add_argument("--anchors", metavar="FILE", help="the anchors of closed logs")
    verify.set_defaults(run=cmd_audit_verify)

    history = commands.add_parser("history", help="runs recorded in the audit directory")
    history.set_defaults(run=cmd_history)
    for command in (precheck, status, rollback, verify, history):
        _global_options(command, given_after_the_command=True)
    return parser


def _global_options(parser: argparse.ArgumentParser, given_after_the_command: bool) -> None:
    """--target and --reports-dir, accepted before the command and after it: after it, they are
    left unset unless given (SUPPRESS), so that they do not undo what came before."""
    default = argparse.SUPPRESS if given_after_the_command else None
    parser.add_argument(
        "--target", metavar="NAME|FILE", default=default, help="target profile (pfs/targets)"
    )
    parser.add_argument("--reports-dir", metavar="DIR", default=default, help="run reports go here")


def _activation_options(
    command: argparse.ArgumentParser,
    suite_arguments: SuiteArguments,
    *,
    needs_confirm: bool = False,
    emergency: bool = False,
) -> None:
    """nexusctl's options of every phase command, and what the command runs."""
    command.add_argument("--plan", action="store_true", help="show the flag diff; change nothing")
    command.add_argument(
        "--confirm",
        action="store_true",
        help="apply the change (without it: plan only)"
        if needs_confirm
        else "accepted as written elsewhere; the change applies without it",
    )
    if emergency:
        command.add_argument(
            "--emergency",
            metavar="REASON",
            help="apply even with red prechecks (only configs, database and lock must hold); "
            "audited as EMERGENCY_OVERRIDE with the reason",
        )
    command.add_argument("--lock-timeout", metavar="SECONDS", help="wait for another deployment")
    _global_options(command, given_after_the_command=True)
    command.set_defaults(
        run=cmd_activate, suite_arguments=suite_arguments, needs_confirm=needs_confirm
    )


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    # Anything after "--" goes to pytest unchanged (e.g. -v, --html=...).
    pytest_args: list[str] = []
    if "--" in arguments:
        cut = arguments.index("--")
        arguments, pytest_args = arguments[:cut], arguments[cut + 1 :]
    try:
        parser = build_parser()
    except phases.RegistryError as exc:  # another package's phase: say which, not a traceback
        print(f"nexusctl: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(arguments)
    args.pytest_args = pytest_args
    args.words = [shlex.quote(word) for word in arguments]  # to say how to apply a plan
    try:
        code: int = args.run(args)
    except ProfileError as exc:
        print(f"nexusctl: target profile refused: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
