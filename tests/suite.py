"""Run the real deployment suite as an operator would and read what it wrote."""

from __future__ import annotations

import copy
import os
import re
import socket
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nexus_deploy.audit import parse_fields
from nexus_deploy.suite.prechecks import catalogue

REPO = Path(__file__).resolve().parents[1]
SANDBOX_PROFILE = REPO / "pfs" / "targets" / "sandbox.yaml"
# Every precheck of the suite, in order: the files of checks/ (nexus_deploy.suite.prechecks).
PRECHECK_NAMES = catalogue(REPO / "checks")
# The file of each precheck in checks/, by its name.
CHECK_FILES = {
    name: f"checks/test_{number:02d}_{name.lower()}.py"
    for number, name in enumerate(PRECHECK_NAMES, start=1)
}
AUDIT_LINE = re.compile(r"^\[AUDIT\] (\S+ \S+) ([A-Z0-9_]+)(.*) sha=[0-9a-f]{16}$")


@dataclass
class AuditEvent:
    event: str
    fields: dict[str, str]


@dataclass
class SuiteRun:
    """What one run of the deployment suite left behind."""

    rc: int
    output: str
    reports_dir: Path
    audit_dir: Path
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return (self.reports_dir / "latest").resolve()

    def global_properties(self) -> dict[str, str]:
        """The <properties> of the JUnit testsuite itself (not of a testcase)."""
        return dict(junit_global_properties(self.run_dir / "junit.xml"))

    def audit_files(self, prefix: str = "precheck-") -> list[Path]:
        # A log in a run folder is also reachable through reports/latest: count each file once.
        candidates = [
            *self.audit_dir.glob(f"{prefix}*.log"),
            *self.reports_dir.glob(f"*/{prefix}*.log"),
        ]
        return sorted({path.resolve() for path in candidates})

    def audit(self, prefix: str = "precheck-") -> list[AuditEvent]:
        files = self.audit_files(prefix)
        assert len(files) == 1, f"expected one {prefix} log, found {files}\n{self.output}"
        return parse_audit(files[0])

    def event(self, name: str, prefix: str = "precheck-") -> AuditEvent:
        matches = [e for e in self.audit(prefix) if e.event == name]
        assert len(matches) == 1, f"{name}: {len(matches)} lines\n{self.output}"
        return matches[0]


def junit_global_properties(path: Path) -> list[tuple[str, str]]:
    """The <properties> of a JUnit file's testsuite itself (not of a testcase), in order: a
    name may come several times ("change")."""
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None, f"no testsuite in {path}"
    properties = suite.find("properties")
    if properties is None:
        return []
    return [(p.get("name", ""), p.get("value", "")) for p in properties.findall("property")]


def parse_audit(path: Path) -> list[AuditEvent]:
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = AUDIT_LINE.match(line)
        assert match, f"not an audit line: {line}"
        fields = parse_fields(match[3])
        fields.pop("hmac", None)  # the keyed chain, like sha: not a field of the event
        events.append(AuditEvent(match[2], fields))
    return events


def parse_junit(path: Path) -> dict[str, dict[str, Any]]:
    cases: dict[str, dict[str, Any]] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        failure = case.find("failure")
        error = case.find("error")
        skipped = case.find("skipped")
        problem = failure if failure is not None else error
        case_data = {
            "outcome": "failed"
            if failure is not None
            else "error"
            if error is not None
            else "skipped"
            if skipped is not None
            else "passed",
            "message": (problem.get("message", "") if problem is not None else ""),
            "properties": {p.get("name"): p.get("value") for p in case.iter("property")},
        }
        # Keyed by the test function: a precheck's testcase is named `precheck 04 DISK`, its
        # function is its `test` property.
        case_data["name"] = case.get("name", "")
        cases[case_data["properties"].get("test") or case_data["name"]] = case_data
    return cases


def set_dotted(mapping: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        mapping = mapping[part]
    if value is DELETE:
        del mapping[leaf]
    else:
        mapping[leaf] = copy.deepcopy(value)


DELETE = object()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def flag_rows(connection: Any) -> list[tuple[str, str, str, str]]:
    """Every flag row exactly as stored (value and timestamp as PostgreSQL prints them)."""
    rows: list[tuple[str, str, str, str]] = connection.execute(
        "SELECT key, value::text, updated_at::text, updated_by "
        "FROM nexus_feature_flags ORDER BY key"
    ).fetchall()
    return rows


def plant_hostile(path: Path, make: str, content: bytes) -> None:
    """Replace the file ``path`` by a hostile one: a FIFO (``make="fifo"``), a link to
    /dev/zero (``"dev-zero"``), else a file holding ``content``."""
    path.unlink()
    if make == "fifo":
        os.mkfifo(path)
    elif make == "dev-zero":
        path.symlink_to("/dev/zero")
    else:
        path.write_bytes(content)
