"""The decision material at the top of report.html, as HTML: the verdict banner, then the
prechecks as one table, the change (plan, guard, verification, rollback, restore point) and
the run's audit log, folded. Pure functions of the run; report_html wires them into pytest-html.
"""

from __future__ import annotations

import html
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from nexus_deploy import __version__, audit
from nexus_deploy.runid import operator
from nexus_deploy.suite.decision import Decision
from nexus_deploy.suite.prechecks import Status, base_name, host_of_label
from nexus_deploy.suite.record import VERDICT_CSS, deployer_commit, platform_head

if TYPE_CHECKING:
    from nexus_deploy.suite.run import DeploymentRun

MAX_SHOWN_BYTES = 200_000  # a script or log larger than this is cut, saying so

# The decision first: pytest-html's page is a column; the title and this summary move to its
# top, above the environment table. Empty log boxes go; the results table stays for detail.
PAGE_CSS = (
    VERDICT_CSS
    + """
body { display: flex; flex-direction: column; }
#title { order: -3; } .summary { order: -2; }
.banner { border: 3px solid; border-radius: 0.5em; padding: 0.6em 1em; margin: 0.5em 0 1em; }
.banner.go { border-color: #1a7f37; background: #eaf6ec; }
.banner.nogo { border-color: #c62828; background: #fdecea; }
.banner.rolledback { border-color: #b26a00; background: #fff4e0; }
.banner.emergency { border-color: #6a1b9a; background: #f3e5f5; }
.banner h2 { margin: 0 0 0.3em; font-size: 2em; }
.banner .headline { font-size: 1.2em; margin: 0.2em 0; }
table.nexus { border-collapse: collapse; margin: 0.4em 0 1em; }
table.nexus th, table.nexus td { border: 1px solid #ccc; padding: 0.2em 0.5em;
  text-align: left; vertical-align: top; }
td.status-PASS { color: #1a7f37; font-weight: bold; }
td.status-WARNING { background: #fff4c2; color: #7a5a00; font-weight: bold; }
td.status-FAIL { background: #fdecea; color: #c62828; font-weight: bold; }
td.status-NOT-RUN { color: #666; font-style: italic; }
.measured { font-family: monospace; font-size: 0.85em; }
pre.nexus { background: #f6f8fa; padding: 0.5em; overflow-x: auto; font-size: 0.85em; }
/* A passed test's row has no log (its box is dropped) and no extra: no empty row under it. */
.extras-row:not(:has(.log)):has(.extraHTML:empty) { display: none; }
@media print {
  .summary__reload, .filters, .collapse, #results-table { display: none; }
  .banner { break-inside: avoid; }
  table.nexus { font-size: 0.8em; }
}
"""
)


def e(value: object) -> str:
    return html.escape(str(value))


def top_of_report(run: DeploymentRun, decision: Decision) -> str:
    """Everything a reviewer decides from, in the order they read it."""
    parts = [f"<style>{PAGE_CSS}</style>", banner(run, decision), precheck_table(run)]
    parts += change_sections(run)
    parts.append(audit_section(run.audit.path))
    return "\n".join(parts)


def refusal_page(data: dict[str, object]) -> str:
    """report.html of a run refused before any check: the banner alone, from its summary."""
    reason, run_id = str(data["headline"]), str(data["run_id"])
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>REFUSED: nexus-deploy run '
        f"{e(run_id)}</title><style>{PAGE_CSS}</style></head><body>"
        f'<h1 id="title">nexus-deploy run {e(run_id)}</h1>'
        f'<section class="banner nogo" id="verdict"><h2><span class="verdict nogo">REFUSED'
        f'</span></h2><p class="headline">{e(reason)}</p><table class="nexus identity">'
        f"<tr><th>run</th><td>{e(run_id)}</td></tr>"
        f"<tr><th>operator</th><td>{e(data['operator'])}</td></tr>"
        f"<tr><th>deployer</th><td>{e(data['deployer_host'])}, nexus-deploy "
        f"{e(data['deployer_version'])} ({e(data['deployer_commit'])})</td></tr>"
        f"<tr><th>audit log</th><td>{e(data['audit_log'])}</td></tr></table>"
        "<p>Nothing was checked and nothing was changed: fix what the line above names and "
        "run again.</p></section></body></html>\n"
    )


def banner(run: DeploymentRun, decision: Decision) -> str:
    request = run.request.summary if run.request else "precheck"
    identity = [
        ("run", run.run_id),
        ("request", request + (" (plan only)" if run.request and run.request.plan_only else "")),
        ("target", f"{run.profile.name} ({run.profile_path})"),
        ("operator", operator()),
        ("deployer", f"{socket.gethostname()}, nexus-deploy {__version__} ({deployer_commit()})"),
        ("platform HEAD", platform_head(run)),
        ("started", f"{run.started_at:%Y-%m-%d %H:%M:%S} UTC, {run.elapsed_s:.1f} s"),
    ]
    reasons = "".join(f"<li>{e(reason)}</li>" for reason in decision.reasons if reason)
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in identity)
    css = decision.verdict.css
    return (
        f'<section class="banner {css}" id="verdict">'
        f'<h2><span class="verdict {css}">{e(decision.verdict.value)}</span></h2>'
        f'<p class="headline">{e(decision.headline)}</p>'
        + (f'<ul class="reasons">{reasons}</ul>' if reasons else "")
        + f'<table class="nexus identity">{rows}</table></section>'
    )


def audit_event(label: str) -> str:
    """How the audit log names a precheck's line: PRECHECK_DISK, PRECHECK_DISK host=api-3."""
    host = host_of_label(label)
    return f"PRECHECK_{base_name(label)}" + (f" host={host}" if host else "")


def precheck_table(run: DeploymentRun) -> str:
    rows = []
    for number, name in run.numbered_prechecks():  # DISK, or DISK[api-3] on a fleet
        outcome = run.tally.outcomes.get(name)
        status = outcome.status.value if outcome else "NOT RUN"
        measured = ", ".join(f"{k}={v}" for k, v in outcome.measured.items()) if outcome else ""
        message = outcome.reason if outcome else ""
        css = status.replace(" ", "-")
        rows.append(
            f'<tr class="precheck" id="precheck-{e(name)}"><td>{number:02d}</td>'
            f'<td title="{e(audit_event(name))}">{e(name)}</td>'
            f'<td class="status-{e(css)}">{e(status)}</td>'
            f'<td class="measured">{e(measured)}</td><td>{e(message)}</td></tr>'
        )
    warnings = run.tally.count(Status.WARNING)
    hosts = f" on {len(run.fleet.fleet.nodes)} hosts" if run.fleet else ""
    caption = f"{len(run.prechecks)} prechecks{hosts}" + (
        f", {warnings} with a WARNING" if warnings else ""
    )
    return (
        f"<h3>Prechecks ({e(caption)})</h3>"
        '<table class="nexus" id="prechecks"><thead><tr><th>#</th><th>precheck</th>'
        "<th>status</th><th>measured</th><th>message</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def change_sections(run: DeploymentRun) -> list[str]:
    progress = run.deployment.progress if run.deployment else None
    if progress is None:
        return []
    parts = []
    if progress.planned:
        rows = (
            "".join(
                f'<tr class="change"><td>{e(c.key)}</td><td>{e(c.old_text)}</td>'
                f"<td>{e(c.new_text)}</td></tr>"
                for c in progress.changes
            )
            or '<tr><td colspan="3">nothing to change</td></tr>'
        )
        parts.append(
            "<h3>Plan</h3>"
            '<table class="nexus" id="plan"><thead><tr><th>key</th><th>before</th>'
            f"<th>after</th></tr></thead><tbody>{rows}</tbody></table>"
        )
        guard = f"refused: {progress.refusal}" if progress.refusal else "cleared"
        parts.append(f'<p id="guard"><b>Progressive guard</b>: {e(guard)}</p>')
    if progress.seen:
        rows = "".join(
            f"<tr><td>{e(s.name)}</td><td>{e(s.url)}</td>"
            f'<td class="status-{"PASS" if s.ok else "FAIL"}">{e(s.saw)}</td>'
            f"<td>{s.latency_ms:.0f} ms</td></tr>"
            for s in progress.seen
        )
        parts.append(
            f"<h3>Verification</h3><p>{e(progress.verification)}</p>"
            '<table class="nexus" id="verification"><thead><tr><th>endpoint</th><th>URL</th>'
            f"<th>saw</th><th>latency</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    if progress.restore_point is not None:
        point = progress.restore_point
        parts.append(
            f'<p id="restore-point"><b>Restore point</b>: <code>{e(point.snapshot)}</code> '
            f"({point.keys} flags), restored by <code>{e(point.files.script)}</code></p>"
        )
    if progress.rollback is not None:
        script = progress.rollback.script
        parts.append(
            f"<h3>Rollback script</h3><p><code>{e(script)}</code></p>"
            f'<pre class="nexus" id="rollback-script">{e(shown_text(script))}</pre>'
        )
    return parts


def audit_section(path: Path) -> str:
    if not path.is_file():
        return f"<p>Audit log {e(path)}: missing</p>"
    result = audit.verify(path)
    chain = "intact" if result.intact else f"BROKEN: {result.problems[0]}"
    complete = "complete" if result.complete else "not complete"
    return (
        f'<details id="audit-log"><summary><b>Audit log</b> <code>{e(path)}</code>: '
        f"{result.lines} lines, chain {e(chain)}, {complete}</summary>"
        f'<pre class="nexus">{e(shown_text(path))}</pre></details>'
    )


def shown_text(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SHOWN_BYTES + 1)
    except OSError as exc:
        return f"(cannot be read: {exc.strerror or exc})"
    text = data[:MAX_SHOWN_BYTES].decode("utf-8", errors="replace")
    return text + ("\n... (cut: the file is larger)" if len(data) > MAX_SHOWN_BYTES else "")
