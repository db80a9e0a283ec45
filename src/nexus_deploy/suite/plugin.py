"""The pytest plugin of the deployer, loaded by the suite's conftest.py.

It only wires hooks to the parts that do the work. Its command-line options live in
``nexus_deploy.suite.options``, an entry point, so that pytest knows them before it reads
conftest.py.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest
from _pytest.junitxml import xml_key

from nexus_deploy.suite import report_html, signals, startup_gc
from nexus_deploy.suite.fleet import parametrize_over_hosts
from nexus_deploy.suite.gate import activation_stage, run_order, split_activation
from nexus_deploy.suite.options import show_only, without_session
from nexus_deploy.suite.prechecks import (
    PENDING_KEY,
    WARNINGS_KEY,
    Outcome,
    Status,
    junit_status,
    outcome_of,
)
from nexus_deploy.suite.run import EMERGENCY, DeploymentRun
from nexus_deploy.suite.startup import build_run
from nexus_deploy.suite.verdict import shorten_self_explaining

RUN_KEY = pytest.StashKey[DeploymentRun]()
STATUS_COLOURS: dict[Status | None, str] = {
    Status.PASS: "green",
    Status.WARNING: "yellow",
    Status.FAIL: "red",
    None: "bold",  # not run
}
PLUGIN_NAME = "nexus-deploy-run"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # tryfirst: the junitxml and html plugins read their output paths in their own configure.
    if hasattr(config, "workerinput"):
        return  # xdist workers run tests; only the controller writes the run's files
    if without_session(config.option):
        return  # --help, --markers, --version: they must work whatever the profile says
    listing = show_only(config.option)
    run = build_run(config, listing)
    if listing:
        # Listing (--collect-only, --fixtures, --setup-plan): the profile and the request are
        # still checked (bad input is refused and audited, as always), and the activation
        # tests that would not run are left out of the list, but nothing reads the target or
        # writes anything (audit, reports, lock, `latest`).
        config.stash[RUN_KEY] = run
        config.pluginmanager.register(ListingHooks(run), PLUGIN_NAME)
        return
    # With -p no:junitxml or -p no:html the option is missing: the gate then says which.
    if hasattr(config.option, "xmlpath"):
        config.option.xmlpath = config.option.xmlpath or str(run.files.junit)
    config.stash[RUN_KEY] = run
    config.pluginmanager.register(RunHooks(run), PLUGIN_NAME)
    config.add_cleanup(signals.end_like_ctrl_c())
    if config.pluginmanager.has_plugin("html"):
        config.option.htmlpath = config.option.htmlpath or str(run.files.html)
        config.option.self_contained_html = True
        config.pluginmanager.register(report_html.HtmlHooks(run), f"{PLUGIN_NAME}-html")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    # Before the facts are gathered (RunHooks), so that their garbage is not frozen.
    startup_gc.resume()  # paused by the options entry point while the suite was imported


def pytest_unconfigure(config: pytest.Config) -> None:
    run = config.stash.get(RUN_KEY, None)
    if run is not None and run.started and not run.finished:
        # Interrupted before the session began its tests (waiting for the lock, say): pytest
        # then skips sessionfinish, and the run is closed here.
        run.finish(pytest.ExitCode.INTERRUPTED)
    for name in (PLUGIN_NAME, f"{PLUGIN_NAME}-html"):
        plugin = config.pluginmanager.get_plugin(name)
        if plugin is not None:
            config.pluginmanager.unregister(plugin)


def current_run(config: pytest.Config) -> DeploymentRun:
    """The run of this session, for fixtures."""
    try:
        return config.stash[RUN_KEY]
    except KeyError:
        raise pytest.UsageError("nexus-deploy: no deployment run (plugin not configured)") from None


class ListingHooks:
    """Hooks of a run that only lists its tests: which ones it would run, and nothing else."""

    def __init__(self, run: DeploymentRun) -> None:
        self.run = run

    def pytest_report_header(self) -> list[str]:
        run = self.run
        return [
            f"nexus-deploy: target {run.profile.name} ({run.profile_path})",
            "nexus-deploy: listing only: nothing is checked on the target, nothing is written",
        ]

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        parametrize_over_hosts(metafunc, self.run.fleet)

    def pytest_itemcollected(self, item: pytest.Item) -> None:
        # The order comes from the catalogue (checks/test_NN_*.py), not from the test files:
        # before any selection or reordering, so that the gate sees what pytest-order made.
        index = run_order(item, self.run.prechecks)
        if index is not None:
            item.add_marker(pytest.mark.order(index))

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        # trylast: -k, -m and --deselect have already removed what they remove.
        keep, drop = split_activation(items, self.run, config)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep


class RunHooks(ListingHooks):
    """Hooks of a configured run; each hands its work to the DeploymentRun."""

    def pytest_report_header(self) -> list[str]:
        run = self.run
        return [
            f"nexus-deploy: run {run.run_id}, target {run.profile.name} ({run.profile_path})",
            f"nexus-deploy: audit directory {run.profile.audit.dir}",
        ]

    def pytest_sessionstart(self) -> None:
        self.run.start()

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")

        def tell(text: str) -> None:
            if reporter is not None:
                reporter.write_line(f"nexus-deploy: {text}", yellow=True)

        self.run.collected(session.items, tell)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if activation_stage(item) is None:
            return
        problems = self.run.gate_before_activation()
        if problems:
            pytest.fail("activation refused: " + "; ".join(problems), pytrace=False)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        shorten_self_explaining(report, call)
        outcome = outcome_of(item, report)
        if report.when != "teardown":
            if outcome is not None and PENDING_KEY not in item.stash:
                item.stash[PENDING_KEY] = outcome
                report_html.attach_outcome(report, outcome)
                self.name_in_junit(item, report, outcome)
        elif PENDING_KEY in item.stash:
            # Written when the item is over: an error in teardown still turns PASS into FAIL.
            final = outcome or item.stash[PENDING_KEY]
            self.run.record(final)
            # junitxml writes a teardown report's properties on the testcase it closes: the
            # last one of the item, also when a teardown error opened a second.
            report.user_properties += [*junit_status(final), ("test", item.name)]
            if outcome is not None:  # the teardown decided (an error): its HTML row says so
                report_html.mark_status(report, final)
        return report

    def name_in_junit(self, item: pytest.Item, report: pytest.TestReport, outcome: Outcome) -> None:
        """`precheck 04 DISK` (`precheck 04 DISK [api-3]` on a fleet) as the testcase's name, as
        CI interfaces list it; the test function stays in the `test` property (junitxml keeps
        attributes set by plugins)."""
        xml = item.config.stash.get(xml_key, None)
        if xml is None or outcome.name not in self.run.prechecks:
            return
        number = self.run.prechecks.index(outcome.name) + 1
        on = f" [{outcome.host}]" if outcome.host else ""
        xml.node_reporter(report).add_attribute("name", f"precheck {number:02d} {outcome.name}{on}")

    @pytest.hookimpl(wrapper=True)
    def pytest_sessionfinish(
        self, session: pytest.Session, exitstatus: int
    ) -> Generator[None, None, None]:
        # Before the JUnit and HTML files are written: what the run decided goes into them.
        stopped = session.shouldfail or session.shouldstop
        session.exitstatus = self.run.settle(str(stopped) if stopped else None, session.exitstatus)
        # The audit log closes first, so that the reports show it whole, chain checked.
        decision = self.run.conclude(int(session.exitstatus))
        xml = session.config.stash.get(xml_key, None)
        if xml is not None:
            verdict = [("verdict", decision.verdict.value), ("verdict_reason", decision.headline)]
            for name, value in verdict + self.run.identity() + self.run.summary():
                xml.add_global_property(name, value)
        yield

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        terminalreporter.section("nexus-deploy")
        summary = self.run.summary()
        for name, value in summary[:1]:
            if name == EMERGENCY:  # an emergency comes first, in every report
                terminalreporter.line(f"{name:>15}: {value}", red=True, bold=True)
                summary = summary[1:]
        for note in self.run.notes:
            terminalreporter.line(f"note: {note}", yellow=True)
        for line, status in self.run.tally.lines():
            terminalreporter.line(line, **{STATUS_COLOURS[status]: True})
        for name, value in summary:
            terminalreporter.line(f"{name:>15}: {value}")
        for label, path in self.run.written():
            terminalreporter.line(f"{label:>15}: {path}")


def register_warning(item: pytest.Item, message: str) -> None:
    """Keep a precheck's WARNING on its item until its outcome is recorded."""
    item.stash.setdefault(WARNINGS_KEY, []).append(message)
