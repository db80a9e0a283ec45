"""What a run leaves for machines and for the history: ``<run>/summary.json`` and
``reports/index.html``, written once the run's audit log is closed.

summary.json (schema 1) is the verdict and its figures; README.md documents every field.
index.html is the run history, one row per run folder that holds a summary.json, newest first,
rebuilt at the end of every run (a folder without one, or with one that does not parse, is
left out and named in a comment of the page).
"""

from __future__ import annotations

import datetime as dt
import html
import json
import socket
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nexus_deploy
from nexus_deploy import __version__, audit
from nexus_deploy.runid import is_run_id, operator
from nexus_deploy.suite.decision import Decision, Verdict
from nexus_deploy.suite.prechecks import base_name, host_of_label

if TYPE_CHECKING:
    from nexus_deploy.suite.run import DeploymentRun

SCHEMA = 1
SUMMARY_FILE = "summary.json"
INDEX_FILE = "index.html"


def deployer_commit() -> str:
    """The git commit of the deployer's own code, or "unknown" (an installed copy, say)."""
    checkout = Path(nexus_deploy.__file__).resolve().parents[2]
    try:
        done = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=5, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "unknown"


def platform_head(run: DeploymentRun) -> str:
    """The platform checkout's HEAD, as the precheck that reads the repository measured it."""
    for outcome in run.tally.outcomes.values():
        if "head" in outcome.measured:
            return str(outcome.measured["head"])
    return "unknown"


def summary_data(run: DeploymentRun, decision: Decision, exitstatus: int) -> dict[str, Any]:
    """The run's verdict and figures, as summary.json holds them."""
    request = run.request
    progress = run.deployment.progress if run.deployment else None
    rollback = progress.rollback if progress else None
    point = progress.restore_point if progress else None
    chain = audit.verify(run.audit.path) if run.audit.path.is_file() else None
    return {
        "schema": SCHEMA,
        "run_id": run.run_id,
        "verdict": decision.verdict.value,
        "headline": decision.headline,
        "reasons": decision.reasons,
        "exit_status": exitstatus,
        "target": run.profile.name,
        "profile": str(run.profile_path),
        "operator": operator(),
        "deployer_host": socket.gethostname(),
        "deployer_version": __version__,
        "deployer_commit": deployer_commit(),
        "platform_head": platform_head(run),
        # Milliseconds: two runs in one second still sort in the history as they started.
        "started_at": run.started_at.isoformat(timespec="milliseconds"),
        "duration_s": round(run.elapsed_s, 2),
        "request": request.summary if request else "precheck",
        "plan_only": bool(request and request.plan_only),
        "emergency": request.emergency if request else None,
        "prechecks": [
            {
                "number": number,
                "name": base_name(label),
                "host": host_of_label(label),  # on a fleet; else null
                "status": outcome.status.value if outcome else "NOT RUN",
                "reason": outcome.reason if outcome else "",
                "measured": outcome.measured if outcome else {},
            }
            for number, label in run.numbered_prechecks()
            for outcome in [run.tally.outcomes.get(label)]
        ],
        "changes": [
            {"key": c.key, "before": c.old_text, "after": c.new_text}
            for c in (progress.changes if progress else [])
        ],
        "guard": (progress.refusal or ("PASS" if progress.cleared else None)) if progress else None,
        "verification": [
            {
                "endpoint": s.name,
                "url": s.url,
                "ok": s.ok,
                "saw": s.saw,
                "latency_ms": round(s.latency_ms, 1),
            }
            for s in (progress.seen if progress else ())
        ],
        "rollback_script": str(rollback.script) if rollback else None,
        "restore_point": str(point.snapshot) if point else None,
        "audit_log": str(run.audit.path),
        "audit_chain": "missing" if chain is None else "intact" if chain.intact else "BROKEN",
        "report": run.files.html.name,
    }


def refusal_data(run_id: str, reason: str, audit_log: Path) -> dict[str, Any]:
    """summary.json of a run refused before any check (bad input): the same schema, with
    what such a run has (no target it could trust, no precheck, no change)."""
    return {
        "schema": SCHEMA,
        "run_id": run_id,
        "verdict": Verdict.REFUSED.value,
        "headline": f"refused before any check: {reason}",
        "reasons": [reason],
        "exit_status": 4,
        "target": None,
        "profile": None,
        "operator": operator(),
        "deployer_host": socket.gethostname(),
        "deployer_version": __version__,
        "deployer_commit": deployer_commit(),
        "platform_head": "unknown",
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        "duration_s": 0.0,
        "request": "refused",
        "plan_only": False,
        "emergency": None,
        "prechecks": [],
        "changes": [],
        "guard": None,
        "verification": [],
        "rollback_script": None,
        "restore_point": None,
        "audit_log": str(audit_log),
        "audit_chain": "intact" if audit.verify(audit_log).intact else "BROKEN",
        "report": "report.html",
    }


def write_summary(run_dir: Path, data: dict[str, Any]) -> Path:
    path = run_dir / SUMMARY_FILE
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def rebuild_index(reports_dir: Path) -> Path:
    """reports/index.html from every run folder's summary.json, newest first."""
    rows, skipped = [], []
    for summary in reports_dir.glob(f"*/{SUMMARY_FILE}"):
        if not is_run_id(summary.parent.name) or summary.parent.is_symlink():
            continue  # `latest` and anything not a run folder
        try:
            data = json.loads(summary.read_text(encoding="utf-8"))
            rows.append((str(data["started_at"]), data, summary.parent.name))
        except (OSError, ValueError, KeyError, TypeError):
            skipped.append(summary.parent.name)
    rows.sort(key=lambda row: (row[0], row[2]), reverse=True)
    path = reports_dir / INDEX_FILE
    temporary = path.with_name(f".{INDEX_FILE}.tmp")
    temporary.write_text(render_index(rows, skipped), encoding="utf-8")
    temporary.replace(path)  # readers never see half a page
    return path


def render_index(rows: list[tuple[str, dict[str, Any], str]], skipped: list[str]) -> str:
    body = "".join(index_row(data, folder) for _, data, folder in rows) or (
        '<tr><td colspan="6">no runs recorded yet</td></tr>'
    )
    note = f"<!-- left out (no readable summary.json): {', '.join(skipped)} -->" if skipped else ""
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>nexus-deploy run history</title>
<style>{VERDICT_CSS}
body {{ font-family: sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }}
</style></head><body>
<h1>nexus-deploy run history</h1>
<p>{len(rows)} runs, newest first. Each links to its verdict-first report.</p>
<table id="runs"><thead><tr><th>time (UTC)</th><th>request</th><th>verdict</th><th>operator</th>
<th>duration</th><th>report</th></tr></thead><tbody>{body}</tbody></table>{note}
</body></html>
"""


def index_row(data: dict[str, Any], folder: str) -> str:
    verdict = str(data.get("verdict", "?"))
    css = next((v.css for v in Verdict if v.value == verdict), "nogo")
    cells = [
        str(data.get("started_at", "")).replace("T", " ")[:19],
        str(data.get("request", "")),
        None,
        str(data.get("operator", "")),
        f"{float(data.get('duration_s', 0)):.1f} s",
    ]
    escaped = [html.escape(c) if c is not None else "" for c in cells]
    escaped[2] = f'<span class="verdict {css}">{html.escape(verdict)}</span>'
    href = html.escape(f"{folder}/{data.get('report', 'report.html')}")
    link = f'<a href="{href}">{html.escape(folder)}</a>'
    return "<tr>" + "".join(f"<td>{c}</td>" for c in [*escaped, link]) + "</tr>"


# Shared by the report's banner and the history: a person reads the colour first.
VERDICT_CSS = """
.verdict { font-weight: bold; padding: 0.1em 0.5em; border-radius: 0.3em; color: #fff; }
.verdict.go { background: #1a7f37; } .verdict.nogo { background: #c62828; }
.verdict.rolledback { background: #b26a00; } .verdict.emergency { background: #6a1b9a; }
"""
