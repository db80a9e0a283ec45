"""Hostile inputs, one harness (issue 12, point 4): each case plants one hostile input in
tmp_path, runs the real deployer on it (`pytest` on the suite, or `nexusctl`), and one test
checks every property for every case:

  exit     the documented non-zero exit code (README: 4 usage, 1 refused or a precheck failed;
           nexusctl: 2 its own usage errors, 1 a broken log or a script it will not run)
  named    the message names the thing (file, field, host, option...)
  unechoed the case's canary, planted in the hostile content, is in none of stdout, stderr and
           the files the run left (junit.xml, report.html, summary.json, audit logs)
  audited  an audit line records the refusal and names the thing (unless the case says why no
           audit line can or may be written: ``unaudited``)
  flags    the flag table, every row and column, is byte-identical afterwards
  unwritten nothing was written but the run's reports, its audit log (and that log's anchor,
           the host lock file): no rollback-*, restore-*, no file changed, nothing in the
           backup directory, nothing in the shared sandbox's anchors or the repository's reports

Every run uses a private copy of the sandbox profile whose audit, backup and anchor paths are
in tmp_path. A case where the deployer misbehaves is marked xfail(strict=True) naming the
finding: it must keep failing, and only on the properties named, until the deployer is fixed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from suite import REPO, SANDBOX_PROFILE, plant_hostile, set_dotted

from nexus_deploy import audit
from nexus_deploy.audit import AuditLog
from nexus_deploy.change import rollback
from nexus_deploy.config.auditkey import load_audit_key
from nexus_deploy.config.profile import load_profile

pytestmark = pytest.mark.usefixtures("sandbox_up")

NEXUSCTL = Path(sys.executable).with_name("nexusctl")
AUDIT_KEY = Path("/etc/nexus-deploy/audit.key")  # read, never written
SHARED_ANCHORS = Path("/var/lib/nexus-deploy/audit-anchors")  # must not name our logs
RUN_ID = "20260101T000000Z-beef"  # a well-formed id for planted files


# --- the cases ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    exit: int
    build: Callable[[World], Built]
    # Properties the deployer fails today, each with the finding: xfail(strict) until fixed.
    findings: dict[str, str] = field(default_factory=dict)
    # False where the input is a number or an id whose only text is what the refusal names.
    planted: bool = True
    # Why no audit line records this refusal, by design (else "audited" is checked).
    unaudited: str = ""

    @property
    def canary(self) -> str:
        return f"CNRY{zlib.crc32(self.name.encode()):08x}Q"


USAGE, REFUSED, NEXUSCTL_USAGE = 4, 1, 2


def finding(why: str, *properties: str) -> dict[str, str]:
    return dict.fromkeys(properties, why)


# What the deployer does today where it should not (see the module docstring): a case whose
# property fails names it with findings=finding(WHY, "property", ...). None is open.

# Why a refusal has no audit line of its own, by design.
VERIFY_READS_ONLY = (
    # A verifier that wrote into what it verifies would change the evidence.
    "nexusctl audit verify is a reader: its stdout and exit code are its record (CI keeps them)"
)
SCRIPT_LOG_A_SYMLINK = (
    # The script's only log is the symlink it refuses: nowhere trustworthy is left to write.
    "a rollback script run by hand refuses its symlinked log on stderr (exit 1) and audits "
    "nowhere; nexusctl rollback checks first and audits the refusal in a log of its own"
)


def hostile_cases() -> list[Case]:
    """The case table; the builders it names follow it."""
    return [
        # -- target profiles: refused before anything runs, audited in the run folder (exit 4) --
        Case("profile-binary-file", USAGE, bad_profile(
            lambda w: b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 24 + w.canary.encode() + b"\x00\x01")),
        Case("profile-dev-zero", USAGE, special_target(dev_zero, "is not a regular file"),
            planted=False),
        Case("profile-fifo", USAGE, special_target(fifo, "is not a regular file"), planted=False),
        Case("profile-huge-file", USAGE, bad_profile(
            lambda w: f"# {w.canary}\n# " + "x" * (2 * 1024 * 1024) + "\n")),
        Case("profile-alias-bomb", USAGE, bad_profile(alias_bomb)),
        Case("profile-deep-nesting", USAGE, bad_profile(
            lambda w: f"# {w.canary}\nname: " + "[" * 50_000 + "]" * 50_000 + "\n")),
        Case("profile-wrong-type", USAGE, profile_field(
            lambda w: {"command_timeout_s": w.canary, "database.port": [w.canary]},
            "command_timeout_s", "database.port")),
        Case("profile-unknown-field-secret-value", USAGE, profile_field(
            lambda w: {"api_token": f"sk-live-{w.canary}"}, "api_token")),
        Case("profile-password-in-host", USAGE, profile_field(
            lambda w: {"host": f"ssh://deploy:{w.canary}@127.0.0.1"}, "host", "holds a password")),
        Case("profile-path-traversal-in-dir", USAGE, profile_field(
            lambda w: {"audit.dir": f"{w.tmp}/audit/../escaped"}, "audit.dir")),
        Case("profile-relative-dir", USAGE, profile_field(
            lambda w: {"backup.dir": f"relative/{w.canary}"}, "backup.dir", "absolute path")),
        Case("profile-not-utf8", USAGE, bad_profile(
            lambda w: b"name: sandbox\n\xff\xfe" + w.canary.encode() + b"\n")),
        Case("profile-shadow-like-file", USAGE, bad_profile(
            lambda w: f"root:$6${w.canary}$hash:19000:0:99999:7:::\ndaemon:*:19000::\n")),
        Case("profile-terminal-escape-in-name", USAGE, profile_field(
            lambda w: {"name": f"\x1b]0;{w.canary}\x07\x1b[2J"}, "name")),
        Case("profile-key-twice", USAGE, bad_profile(
            lambda w: f"host: local://\nhost: ssh://{w.canary}@h\n")),
        Case("profile-a-list", USAGE, bad_profile(lambda w: f"- {w.canary}\n- two\n")),
        # -- phase configs (config.dir): the CONFIG precheck fails, the run is NO-GO (exit 1) --
        Case("config-alias-bomb", REFUSED, phase_config(
            "marketplace-phase3.yaml", alias_bomb, "", "aliases")),
        Case("config-fifo", REFUSED, phase_config(
            "global-launch.yaml", None, "fifo", "is not a regular file"), planted=False),
        Case("config-dev-zero", REFUSED, phase_config(
            "jurisdiction-engine.yaml", None, "dev-zero", "is not a regular file"), planted=False),
        Case("config-terminal-escape-raw", REFUSED, phase_config(
            "marketplace-phase3.yaml",
            lambda w: (REPO / "pfs/marketplace-phase3.yaml").read_text("utf-8").replace(
                "name: NexCoin", f"name: \x1b[2J{w.canary}"))),
        Case("config-terminal-escape-quoted", REFUSED, phase_edit(
            "marketplace-phase3.yaml",
            lambda w, d: d["currency"].update(name=f"\x1b]0;{w.canary}\x07"), "currency.name")),
        Case("config-huge-list", REFUSED, phase_edit(
            "marketplace-phase3.yaml",
            lambda w, d: d["currency"].update(
                converts_to=[f"{w.canary}-{i}" for i in range(20_000)]),
            "currency.converts_to")),
        Case("config-wrong-type", REFUSED, phase_edit(
            "marketplace-phase3.yaml", lambda w, d: d.update(min_soak_days=f"7 {w.canary}"),
            "min_soak_days")),
        Case("config-unknown-key", REFUSED, phase_edit(
            "global-launch.yaml", lambda w, d: d.update({f"$6${w.canary}$": 1}))),
        Case("config-step-out-of-range", REFUSED, phase_edit(
            "global-launch.yaml",
            lambda w, d: d["prerequisites"][1].update(equals=9), "marketplace.step")),
        Case("config-steps-with-a-gap", REFUSED, phase_edit(
            "marketplace-phase3.yaml",
            lambda w, d: d["steps"].update({7: d["steps"].pop(4)}), "steps")),
        Case("config-not-utf8", REFUSED, phase_config(
            "jurisdiction-engine.yaml",
            lambda w: f"blocked: [CU]\n# {w.canary}\n".encode() + b"\xff\xfe\n")),
        # -- arguments: usage errors, refused before anything runs (exit 4) --
        Case("arg-unknown-phase", USAGE, arguments(
            "--activate=phase9-{canary}", named=("unknown phase",))),
        Case("arg-step-out-of-range", USAGE, arguments(
            "--activate=phase3", "--step=5", named=("out of range",)), planted=False),
        Case("arg-negative-step", USAGE, arguments(
            "--activate=phase3", "--step=-1", named=("out of range",)), planted=False),
        Case("arg-non-integer-step", USAGE, arguments(
            "--activate=phase3", "--step=1;{canary}", named=("not a whole number",))),
        Case("arg-unknown-mode", USAGE, arguments(
            "--activate=phase4", "--mode={canary}", named=("unknown mode",))),
        Case("arg-step-for-the-launch", USAGE, arguments(
            "--activate=phase4", "--step=1", named=("--step is for --activate phase3",)),
            planted=False),
        Case("arg-lock-timeout-not-seconds", USAGE, arguments(
            "--activate=phase3", "--step=0", "--lock-timeout={canary}", named=("--lock-timeout",))),
        Case("arg-target-a-directory", USAGE, special_target(a_directory, "is not a regular file")),
        Case("arg-reports-dir-a-file", USAGE, reports_dir_a_file),
        Case("arg-reports-latest-not-a-link", USAGE, latest_not_a_link),
        Case("arg-emergency-without-reason", USAGE, arguments(
            "--activate=phase3", "--step=0", "--emergency=  ",
            named=("--emergency needs a reason",)),
            planted=False),
        Case("arg-emergency-reason-too-long", USAGE, arguments(
            "--activate=phase3", "--step=0", "--emergency={canary}" + "x" * 300,
            named=("at most 200 printable characters",))),
        Case("arg-emergency-reason-newlines", USAGE, arguments(
            "--activate=phase3", "--step=0", "--emergency=db down\n{canary}\r\n",
            named=("one line",))),
        Case("arg-emergency-reason-escapes", USAGE, arguments(
            "--activate=phase3", "--step=0", "--emergency=\x1b[2J\x1b]0;{canary}\x07",
            named=("printable characters",))),
        Case("arg-emergency-moving-up", USAGE, arguments(
            "--activate=phase3", "--step=1", "--emergency=need it {canary}",
            named=("--emergency only turns features off",))),
        # -- run ids given to nexusctl rollback (exit 2, nexusctl's usage error) --
        Case("runid-dot-dot", NEXUSCTL_USAGE, nexusctl(
            "rollback", "../{canary}", named=("is not a run id",))),
        Case("runid-absolute-path", NEXUSCTL_USAGE, nexusctl(
            "rollback", "/etc/{canary}", named=("is not a run id",))),
        Case("runid-control-characters", NEXUSCTL_USAGE, nexusctl(
            "rollback", "20260101T000000Z-beef\x01{canary}\x1b[2J", named=("is not a run id",))),
        Case("runid-glob", NEXUSCTL_USAGE, nexusctl(
            "rollback", "*{canary}*", named=("is not a run id",))),
        Case("runid-restore-to-dot-dot", NEXUSCTL_USAGE, nexusctl(
            "rollback", "--to", "../../etc/{canary}", named=("is not a run id",))),
        Case("runid-well-formed-absent", NEXUSCTL_USAGE, nexusctl(
            "rollback", "20990101T000000Z-dead", named=("no rollback-20990101T000000Z-dead.sh",)),
            planted=False),
        # -- audit files: verify and rollback refuse what the deployer did not write (exit 1) --
        Case("audit-torn-last-line", REFUSED, verify(torn_last_line, "BROKEN"),
            unaudited=VERIFY_READS_ONLY),
        Case("audit-megabyte-line", REFUSED, verify(megabyte_line, "line longer than 65536 bytes"),
            unaudited=VERIFY_READS_ONLY),
        Case("audit-forged-rechained", REFUSED, verify(forged_rechained, "keyed chain broken"),
            unaudited=VERIFY_READS_ONLY),
        Case("audit-rollback-script-edited", REFUSED, rollback_script_edited),
        # -- directory tricks: a real activation must not run, write or follow (exit 1) --
        Case("dir-audit-world-writable", REFUSED, activation_with(
            world_writable_audit, "{audit}", "writable by others")),
        Case("dir-audit-a-symlink", REFUSED, activation_with(
            symlinked_audit, "{audit}", "is a symlink")),
        Case("dir-audit-of-another-user", REFUSED, activation_with(
            audit_dir_of_another_user, "{audit}", "belongs to uid 65534")),
        Case("dir-lock-file-a-symlink", REFUSED, activation_with(
            symlinked_lock, "cannot take the deployment lock")),
        Case("dir-rollback-log-a-symlink", REFUSED, rollback_log_symlink),
        Case("dir-rollback-log-a-symlink-by-hand", REFUSED, rollback_log_symlink_by_hand,
            unaudited=SCRIPT_LOG_A_SYMLINK),
        Case("dir-audit-key-others-read", USAGE, key_file("{canary}".ljust(64, "0"), 0o644)),
        Case("dir-audit-key-not-a-key", USAGE, key_file("{canary}\n", 0o600)),
    ]  # fmt: skip


# --- the world a case is built in -----------------------------------------------------------


@dataclass
class World:
    """tmp_path, laid out for one case: a private profile and the places a run writes."""

    tmp: Path
    canary: str

    @property
    def reports(self) -> Path:
        return self.tmp / "reports"

    @property
    def audit(self) -> Path:
        return self.tmp / "audit"

    @property
    def backup(self) -> Path:
        return self.tmp / "backup"

    @property
    def anchors(self) -> Path:
        return self.tmp / "anchors"

    def profile_data(self) -> dict[str, Any]:
        data: dict[str, Any] = yaml.safe_load(SANDBOX_PROFILE.read_text(encoding="utf-8"))
        data["audit"].update(dir=str(self.audit), anchor_file=str(self.anchors))
        data["backup"]["dir"] = str(self.backup)
        return data

    def profile(self, changes: dict[str, Any] | None = None, comment: str = "") -> Path:
        """The private profile with fields changed (dotted names); ``comment`` goes on top."""
        data = self.profile_data()
        for dotted, value in (changes or {}).items():
            set_dotted(data, dotted, value)
        path = self.tmp / "target.yaml"
        path.write_text(comment + yaml.safe_dump(data), encoding="utf-8")
        return path

    def file(self, name: str, content: str | bytes) -> Path:
        path = self.tmp / name
        if isinstance(content, str):
            content = content.encode("utf-8")
        path.write_bytes(content)
        return path

    def pfs(self, name: str, content: str | bytes | None = None, *, make: str = "") -> Path:
        """A copy of pfs/*.yaml with ``name`` replaced (by ``content``, or a FIFO, a link to
        /dev/zero); the private profile then points config.dir at it."""
        pfs = self.tmp / "pfs"
        pfs.mkdir(exist_ok=True)
        for path in (REPO / "pfs").glob("*.yaml"):
            shutil.copy(path, pfs)
        hostile = pfs / name
        text = content.encode() if isinstance(content, str) else content or b""
        plant_hostile(hostile, make, text)
        self.profile({"config.dir": str(pfs)})
        return hostile

    def pfs_edit(
        self, name: str, edit: Callable[[dict[str, Any]], None], comment: str = ""
    ) -> Path:
        data = yaml.safe_load((REPO / "pfs" / name).read_text(encoding="utf-8"))
        edit(data)
        return self.pfs(name, comment + yaml.safe_dump(data))

    def suite(self, *args: str, target: Path | None = None) -> list[str]:
        """The deployment suite as an operator runs it (`pytest ...` in the repository)."""
        target = target or self.tmp / "target.yaml"
        if not target.exists() and target == self.tmp / "target.yaml":
            self.profile()
        return [sys.executable, "-m", "pytest", f"--target={target}",
                f"--reports-dir={self.reports}", *(args or ("-m", "precheck"))]  # fmt: skip

    def nexusctl(self, *words: str) -> list[str]:
        target = self.tmp / "target.yaml"
        if not target.exists():
            self.profile()
        return [str(NEXUSCTL), *words, f"--target={target}", f"--reports-dir={self.reports}"]


Built = tuple[list[str], tuple[str, ...]]  # the command, what its refusal must name


# --- builders: each plants one hostile input and says what to run ---------------------------


def bad_profile(content: Callable[[World], str | bytes]) -> Callable[[World], Built]:
    """A profile file with this content, as --target of a precheck run."""

    def build(w: World) -> Built:
        path = w.file("hostile.yaml", content(w))
        return w.suite(target=path), (str(path),)

    return build


def profile_field(changes: Callable[[World], dict[str, Any]], *named: str) -> Callable[..., Built]:
    """The private profile with fields changed; the canary in a comment on top if not in a
    value."""

    def build(w: World) -> Built:
        path = w.profile(changes(w), comment=f"# {w.canary}\n")
        return w.suite(target=path), (str(path), *named)

    return build


def special_target(make: Callable[[World], Path], says: str) -> Callable[[World], Built]:
    def build(w: World) -> Built:
        target = make(w)
        return w.suite(target=target), (str(target), says)

    return build


def fifo(w: World) -> Path:
    path = w.tmp / "fifo.yaml"
    os.mkfifo(path)
    return path


def a_directory(w: World) -> Path:
    directory = w.tmp / "profiles.yaml"
    directory.mkdir()
    (directory / "sandbox.yaml").write_text(f"name: {w.canary}\n", encoding="utf-8")
    return directory


def dev_zero(w: World) -> Path:
    return Path("/dev/zero")


def alias_bomb(w: World, levels: int = 9) -> str:
    lines = [f"# {w.canary}", "a: &a [x, x, x, x, x, x, x, x, x]"]
    names = "abcdefghij"[:levels]
    lines += [f"{c}: &{c} [{', '.join(['*' + p] * 9)}]" for p, c in pairwise(names)]
    return "\n".join(lines) + "\n"


def phase_config(
    name: str, content: Callable[[World], str | bytes] | None = None, make: str = "", *named: str
) -> Callable[[World], Built]:
    def build(w: World) -> Built:
        hostile = w.pfs(name, content(w) if content else None, make=make)
        return w.suite(), (str(hostile), *named)

    return build


def phase_edit(
    name: str, edit: Callable[[World, dict[str, Any]], None], *named: str
) -> Callable[[World], Built]:
    def build(w: World) -> Built:
        hostile = w.pfs_edit(name, lambda data: edit(w, data), comment=f"# {w.canary}\n")
        return w.suite(), (str(hostile), *named)

    return build


def arguments(*args: str, named: tuple[str, ...]) -> Callable[[World], Built]:
    """Suite arguments; {canary} in them is replaced by the case's canary."""

    def build(w: World) -> Built:
        return w.suite(*(a.format(canary=w.canary) for a in args)), named

    return build


def nexusctl(*words: str, named: tuple[str, ...]) -> Callable[[World], Built]:
    def build(w: World) -> Built:
        return w.nexusctl(*(word.format(canary=w.canary) for word in words)), named

    return build


def reports_dir_a_file(w: World) -> Built:
    w.file("reports", f"{w.canary}\n")
    return w.suite(), (str(w.reports), "cannot be made")


def latest_not_a_link(w: World) -> Built:
    w.reports.mkdir()
    w.file("reports/latest", f"{w.canary}\n")
    return w.suite(), (str(w.reports / "latest"), "is not a link")


def chained_log(path: Path, events: list[tuple[str, dict[str, Any]]], key: bytes | None) -> None:
    log = AuditLog(path, key)
    for event, fields in events:
        log.write(event, **fields)
    log.close()
    if key is not None and log.final_hmac is not None:
        audit.anchor(path.parent.parent / "anchors", path, log.final_hmac)


def rechained(log: Path, edit: Callable[[str], str]) -> None:
    """Edit each line and recompute every sha with the public formula (no key)."""
    previous = audit.genesis(log.name)
    lines = []
    for line in log.read_text(encoding="utf-8").splitlines():
        body = edit(line.rsplit(" sha=", 1)[0])
        previous = audit.chain(previous, body)
        lines.append(f"{body} sha={previous}")
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")


def verify(make: Callable[[World, Path], None], *named: str) -> Callable[[World], Built]:
    """A log planted in the private audit directory, given to `nexusctl audit verify`."""

    def build(w: World) -> Built:
        w.audit.mkdir(exist_ok=True)
        log = w.audit / f"deployment-{RUN_ID}.log"
        make(w, log)
        return w.nexusctl("audit", "verify", str(log)), (str(log), *named)

    return build


def torn_last_line(w: World, log: Path) -> None:
    chained_log(log, [("DEPLOYMENT_START", {"run_id": RUN_ID})], None)
    with log.open("a", encoding="utf-8") as handle:  # a writer died mid-line
        handle.write(f"[AUDIT] 2026-01-01 00:00:01 FLAG_SET key={w.canary} value=tr")


def megabyte_line(w: World, log: Path) -> None:
    log.write_text(w.canary + "x" * (1024 * 1024), encoding="utf-8")


def forged_rechained(w: World, log: Path) -> None:
    key = load_audit_key(AUDIT_KEY, w.audit)
    events = [
        ("DEPLOYMENT_START", {"run_id": RUN_ID, "request": "precheck"}),
        ("PRECHECK_DISK", {"status": "FAIL", "reason": "full"}),
        ("DEPLOYMENT_COMPLETE", {"duration": 1, "status": "failed"}),
    ]
    chained_log(log, events, key)
    rechained(
        log, lambda body: body.replace("status=FAIL reason=full", f"status=PASS note={w.canary}")
    )


def planted_rollback(w: World) -> Path:
    """A genuine rollback script, as an activation writes it (for a key no one uses), and its
    run's intact audit log recording the script's sha256: what `nexusctl rollback` trusts."""
    w.audit.mkdir(exist_ok=True)
    profile = load_profile(w.tmp / "target.yaml")
    files = rollback.RollbackFiles.for_run(w.audit, RUN_ID)
    key = "tests.hostile.never-written"
    restore = rollback.Restore(
        RUN_ID, profile.database, w.audit / ".deploy.lock", {key: None}, {key: True},
        f"nexus-deploy run={RUN_ID} operator=tests",
    )  # fmt: skip
    sha = rollback.write_ahead(files, restore)
    events = [
        ("DEPLOYMENT_START", {"run_id": RUN_ID, "request": "phase3 step 1"}),
        ("ROLLBACK_WRITTEN", {"script": str(files.script), "sha256": sha}),
        ("DEPLOYMENT_COMPLETE", {"duration": 1, "status": "success"}),
    ]
    chained_log(w.audit / f"deployment-{RUN_ID}.log", events, None)
    return files.script


def rollback_script_edited(w: World) -> Built:
    w.profile()
    script = planted_rollback(w)
    with script.open("a", encoding="utf-8") as handle:  # what a local attacker appends
        handle.write(f"\ntouch {w.tmp / 'ran-as-root'}  # {w.canary}\n")
    return w.nexusctl("rollback", RUN_ID), (str(script), "changed since the deployer wrote it")


def symlinked_rollback_log(w: World) -> tuple[Path, Path]:
    """A genuine rollback script whose own log is a symlink to a file it must not append to."""
    w.profile()
    script = planted_rollback(w)
    victim = w.file("victim", f"precious {w.canary}\n")
    script.with_suffix(".log").symlink_to(victim)
    return script, script.with_suffix(".log")


def rollback_log_symlink(w: World) -> Built:
    _, log = symlinked_rollback_log(w)
    return w.nexusctl("rollback", RUN_ID), (str(log), "is a symlink")


def rollback_log_symlink_by_hand(w: World) -> Built:
    script, log = symlinked_rollback_log(w)
    return ["bash", str(script)], (str(log), "is a symlink")


def activation_with(prepare: Callable[[World], None], *named: str) -> Callable[[World], Built]:
    """A real activation (marketplace step 1, not a plan) after ``prepare`` set a trap."""

    def build(w: World) -> Built:
        w.profile()
        prepare(w)
        return w.suite("--activate=phase3", "--step=1"), tuple(
            n.format(audit=w.audit, tmp=w.tmp) for n in named
        )

    return build


def world_writable_audit(w: World) -> None:
    w.audit.mkdir()
    w.audit.chmod(0o777)
    (w.audit / "planted.sh").write_text(f"echo {w.canary}\n", encoding="utf-8")


def symlinked_audit(w: World) -> None:
    elsewhere = w.tmp / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "planted.sh").write_text(f"echo {w.canary}\n", encoding="utf-8")
    w.audit.symlink_to(elsewhere)


def audit_dir_of_another_user(w: World) -> None:
    w.audit.mkdir()
    (w.audit / "planted.sh").write_text(f"echo {w.canary}\n", encoding="utf-8")
    os.chown(w.audit, 65534, 65534)


def symlinked_lock(w: World) -> None:
    w.audit.mkdir()
    (w.audit / ".deploy.lock").symlink_to(w.file("victim", f"precious {w.canary}\n"))


def key_file(text: str, mode: int) -> Callable[[World], Built]:
    def build(w: World) -> Built:
        key = w.file("audit.key", text.format(canary=w.canary))
        key.chmod(mode)
        target = w.profile({"audit.key_file": str(key)})
        return w.suite(target=target), (str(key), "audit.key_file")

    return build


# --- the checks ------------------------------------------------------------------------------


class Finding(AssertionError):
    """Every property that failed is a known finding of this case."""


def table_dump(connection: psycopg.Connection[Any]) -> list[str]:
    """Every row of the flag table, all columns, exactly as PostgreSQL prints them."""
    rows = connection.execute(
        "SELECT row_to_json(t)::text FROM nexus_feature_flags t ORDER BY key"
    ).fetchall()
    return [row[0] for row in rows]


def snapshot(root: Path) -> dict[Path, str]:
    """Every path under root, not following symlinks: a file's sha256, or what it is."""
    seen: dict[Path, str] = {}
    for directory, subdirs, files in os.walk(root):
        for name in subdirs + files:
            path = Path(directory, name)
            if path.is_symlink():
                seen[path] = f"-> {path.readlink()}"
            elif path.is_file():
                seen[path] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                seen[path] = "dir" if path.is_dir() else "special"
    return seen


AUDIT_LOG_NAME = ("precheck-", "deployment-")
REFUSAL_EVENTS = ("DEPLOYMENT_REFUSED", "GATE_CLOSED", "LOCK_DENIED", "ROLLBACK_REFUSED")


def refusal_lines(log: Path) -> Iterator[str]:
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        words = line.split(" ", 4)
        event = words[3] if len(words) > 3 else ""
        failed = event.startswith("PRECHECK_") and " status=FAIL" in line
        if event in REFUSAL_EVENTS or failed:
            yield line


def params() -> list[Any]:
    cases = hostile_cases()
    names = [case.name for case in cases]
    assert len(set(names)) == len(names) >= 40
    made = []
    for case in cases:
        marks = []
        if case.findings:
            by_why: dict[str, list[str]] = {}
            for prop, why in case.findings.items():
                by_why.setdefault(why, []).append(prop)
            reason = "finding: " + "; ".join(f"{why} ({', '.join(p)})" for why, p in by_why.items())
            marks.append(pytest.mark.xfail(strict=True, raises=Finding, reason=reason))
        made.append(pytest.param(case, id=case.name, marks=marks))
    return made


@pytest.mark.parametrize("case", params())
def test_a_hostile_input_is_refused_named_unechoed_audited_and_changes_nothing(
    case: Case, tmp_path: Path, flags_db: psycopg.Connection[Any]
) -> None:
    # Other engineers' runs write the shared sandbox's table too: an attempt during which only
    # they wrote (each row names its run; ours audit no write) proves nothing, and is made again.
    for attempt in range(1, ATTEMPTS + 1):
        failed, shown, foreign = check(case, tmp_path / f"attempt-{attempt}", flags_db)
        if not foreign:
            break
    surprises = {p: why for p, why in failed.items() if p not in case.findings}
    assert not surprises, f"{surprises}\n{shown}"
    fixed = [p for p in case.findings if p not in failed]
    assert not fixed, f"finding fixed for {fixed}: drop it from the case\n{shown}"
    if failed:
        raise Finding(f"{failed}\n{shown}")


ATTEMPTS = 3
WRITES = (" FLAG_SET ", " ACTIVATION_COMMITTED ", " RESTORE_COMPLETE ", " ROLLBACK_COMPLETE ")


def check(
    case: Case, root: Path, flags_db: psycopg.Connection[Any]
) -> tuple[dict[str, str], str, bool]:
    """Build and run the case in ``root``: the properties it failed (property: why), what to
    show, and whether the flag table changed by someone else's hand only."""
    root.mkdir()
    world = World(root, case.canary)
    world.backup.mkdir()
    command, named = case.build(world)
    files_before = snapshot(root)
    anchors_before = world.anchors.read_bytes() if world.anchors.exists() else b""
    table_before = table_dump(flags_db)
    done = subprocess.run(command, cwd=REPO, capture_output=True, timeout=120)
    table_after = table_dump(flags_db)
    files_after = snapshot(root)
    output = done.stdout + done.stderr
    text = output.decode("utf-8", errors="replace")
    shown = f"$ {' '.join(map(repr, command))}\nexit {done.returncode}\n{text[-3000:]}"

    new_or_changed = [p for p, h in files_after.items() if files_before.get(p) != h]
    logs = [
        p for p in new_or_changed
        if p.name.startswith(AUDIT_LOG_NAME) and p.suffix == ".log" and not p.is_symlink()
    ]  # fmt: skip
    failed: dict[str, str] = {}

    if done.returncode != case.exit:
        failed["exit"] = f"exit {done.returncode}, expected {case.exit}"
    missing = [name for name in named if name not in text]
    if missing:
        failed["named"] = f"the message does not name {missing}"
    if case.planted:
        echoed = ["output"] if case.canary.encode() in output else []
        echoed += [
            str(p.relative_to(root)) for p in new_or_changed
            if p.is_file() and not p.is_symlink() and case.canary.encode() in p.read_bytes()
        ]  # fmt: skip
        if echoed:
            failed["unechoed"] = f"the canary {case.canary} is in {echoed}"
    if b"\x1b" in output or b"\x07" in output:
        failed["unechoed"] = failed.get("unechoed", "") + " a raw terminal escape reached output"
    refusals = [line for log in logs for line in refusal_lines(log)]
    if not case.unaudited and not any(all(name in line for name in named) for line in refusals):
        failed["audited"] = f"no refusal line naming {list(named)} in {logs}: {refusals}"
    foreign = False
    if table_after != table_before:
        changed = sorted(set(table_before) ^ set(table_after))
        failed["flags"] = f"the flag table changed: {[row[:200] for row in changed]}"
        ours = {RUN_ID, "tests.hostile.", *(log.stem.split("-", 1)[1] for log in logs)}
        audited_writes = [log for log in logs if any(w in log.read_text("utf-8") for w in WRITES)]
        foreign = not audited_writes and not any(mark in row for row in changed for mark in ours)
    unexpected = [
        str(p) for p in new_or_changed
        if not p.is_relative_to(world.reports)
        and p not in logs
        and p not in (world.audit, world.audit.resolve())  # made to hold the audit log
        and p.name != ".deploy.lock"  # the host lock, taken at the start of an activation
        and p != world.anchors
    ]  # fmt: skip
    unexpected += [str(p) for p in files_before if p not in files_after]
    if world.anchors.exists() and not world.anchors.read_bytes().startswith(anchors_before):
        unexpected.append(f"{world.anchors} rewritten, not appended to")
    unexpected += [str(p) for p in world.backup.iterdir()]
    shared = SHARED_ANCHORS.read_text(encoding="utf-8") if SHARED_ANCHORS.exists() else ""
    unexpected += [f"{SHARED_ANCHORS} names {log.name}" for log in logs if log.name in shared]
    unexpected += [
        str(REPO / "reports" / log.stem.split("-", 1)[1]) for log in logs
        if (REPO / "reports" / log.stem.split("-", 1)[1]).exists()
    ]  # fmt: skip
    if unexpected:
        failed["unwritten"] = f"written: {unexpected}"
    return failed, shown, foreign


# --- stored flag rows: not refused (the table is the platform's), but inert ------------------

HOSTILE_ROWS = {
    "tests.hostile.\x1b]0;owned\x07\x1b[2Jescape": "\x1b[31mred\x1b[0m\x07",
    "tests.hostile.huge": "x" * 1_000_000,
    "tests.hostile.quote'; DROP TABLE nexus_feature_flags; --": 'it\'s "quoted" \\ too',
}


@pytest.fixture
def hostile_rows(flags_db: psycopg.Connection[Any]) -> Iterator[None]:
    for key, value in HOSTILE_ROWS.items():
        flags_db.execute(
            "INSERT INTO nexus_feature_flags (key, value, updated_at, updated_by) "
            "VALUES (%s, to_jsonb(%s::text), now(), 'tests hostile rows') "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (key, value),
        )
    yield
    flags_db.execute("DELETE FROM nexus_feature_flags WHERE key LIKE 'tests.hostile.%'")


@pytest.mark.parametrize("words", [("status",), ("marketplace", "enable", "--phase", "3",
                                                 "--step", "1", "--plan")],
                         ids=["status", "plan"])  # fmt: skip
def test_hostile_stored_rows_stay_inert(
    words: tuple[str, ...],
    tmp_path: Path,
    flags_db: psycopg.Connection[Any],
    hostile_rows: None,
) -> None:
    world = World(tmp_path, "")
    world.backup.mkdir()
    before = table_dump(flags_db)
    done = subprocess.run(world.nexusctl(*words), cwd=REPO, capture_output=True, timeout=120)
    assert table_dump(flags_db) == before, "a read changed the flag table"
    output = done.stdout + done.stderr
    assert done.returncode in (0, 1), output[-2000:]  # 1: a precheck or the guard said no
    assert b"\x1b" not in output and b"\x07" not in output, "a stored escape reached the terminal"
    if words == ("status",):
        assert done.returncode == 0, output[-2000:]
        assert b"tests.hostile.quote'; DROP TABLE" in done.stdout
        assert rb"tests.hostile.\x1b]0;owned" in done.stdout
    assert not list(world.backup.iterdir()), "a plan or a status wrote a restore point"
