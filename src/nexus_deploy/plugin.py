"""The pytest plugin of the deployer, loaded by the suite's conftest.py.

It only wires hooks to the parts that do the work. Its command-line options live in
``nexus_deploy.options``, an entry point, so that pytest knows them before it reads conftest.py.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest

from nexus_deploy import report_html
from nexus_deploy.audit import AuditLog
from nexus_deploy.prechecks import WARNINGS_KEY
from nexus_deploy.profile import ProfileError, load_profile, resolve_target_path
from nexus_deploy.run import DeploymentRun, RunFiles, new_run_id, outcome_of

RUN_KEY = pytest.StashKey[DeploymentRun]()
PLUGIN_NAME = "nexus-deploy-run"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # tryfirst: the junitxml and html plugins read their output paths in their own configure.
    if hasattr(config, "workerinput"):
        return  # xdist workers run tests; only the controller writes the run's files
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
        refuse(files, run_id, str(exc))
        raise pytest.UsageError(f"target profile refused: {exc}") from None
    config.option.xmlpath = config.option.xmlpath or str(files.junit)
    config.option.htmlpath = config.option.htmlpath or str(files.html)
    config.option.self_contained_html = True
    run = DeploymentRun(run_id, profile, profile_path, files)
    config.stash[RUN_KEY] = run
    config.pluginmanager.register(RunHooks(run), PLUGIN_NAME)
    config.pluginmanager.register(report_html.HtmlHooks(run), f"{PLUGIN_NAME}-html")


def pytest_unconfigure(config: pytest.Config) -> None:
    for name in (PLUGIN_NAME, f"{PLUGIN_NAME}-html"):
        plugin = config.pluginmanager.get_plugin(name)
        if plugin is not None:
            config.pluginmanager.unregister(plugin)


def refuse(files: RunFiles, run_id: str, reason: str) -> None:
    """Audit a run refused before any check; the profile is unusable, so the run folder holds it."""
    audit = AuditLog(files.run_dir / f"precheck-{run_id}.log")
    audit.write("DEPLOYMENT_START", run_id=run_id)
    audit.write("DEPLOYMENT_REFUSED", reason=reason)
    audit.write("DEPLOYMENT_COMPLETE", duration=0, status="refused")
    audit.close()


def current_run(config: pytest.Config) -> DeploymentRun:
    """The run of this session, for fixtures."""
    try:
        return config.stash[RUN_KEY]
    except KeyError:
        raise pytest.UsageError("nexus-deploy: no deployment run (plugin not configured)") from None


class RunHooks:
    """Hooks of a configured run; each hands its work to the DeploymentRun."""

    def __init__(self, run: DeploymentRun) -> None:
        self.run = run

    def pytest_report_header(self) -> list[str]:
        run = self.run
        return [
            f"nexus-deploy: run {run.run_id}, target {run.profile.name} ({run.profile_path})",
            f"nexus-deploy: audit directory {run.profile.audit.dir}",
        ]

    def pytest_sessionstart(self) -> None:
        self.run.start()

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.run.collected(session.items)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        outcome = outcome_of(item, report)
        if outcome is not None and outcome.name not in self.run.tally.outcomes:
            self.run.record(outcome)
            report_html.attach_outcome(report, outcome)
        return report

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, exitstatus: int) -> None:
        self.run.finish(int(exitstatus))

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        terminalreporter.section("nexus-deploy")
        for note in self.run.notes:
            terminalreporter.line(f"note: {note}", yellow=True)
        for label, path in self.run.written():
            terminalreporter.line(f"{label:>12}: {path}")


def register_warning(item: pytest.Item, message: str) -> None:
    """Keep a precheck's WARNING on its item until its outcome is recorded."""
    item.stash.setdefault(WARNINGS_KEY, []).append(message)
