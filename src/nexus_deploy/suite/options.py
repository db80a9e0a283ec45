"""The deployer's command-line options, registered through the ``pytest11`` entry point.

Registered early so that pytest parses ``--target /path/file.yaml`` as an option with a value,
not as a test path that would move the rootdir. The options do nothing until the deployment
suite's conftest.py loads ``nexus_deploy.suite.plugin``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nexus_deploy.config.targets import TARGETS_DIR


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nexus-deploy", "Nexus COS deployment")
    group.addoption(
        "--target",
        dest="nexus_target",
        metavar="NAME|FILE",
        default=None,
        help="target profile: a name in pfs/targets/ or a YAML file "
        "(default: $NEXUS_TARGET, else 'sandbox')",
    )
    group.addoption(
        "--reports-dir",
        dest="nexus_reports_dir",
        metavar="DIR",
        type=Path,
        default=None,
        help="where run folders <run id>/report.html, junit.xml go (default: <rootdir>/reports)",
    )
    # Activation options are kept as text here and validated together when the run is
    # configured, so that a bad value is refused with an audit line, not only argparse's usage.
    group.addoption(
        "--activate",
        dest="nexus_activate",
        metavar="PHASE",
        default=None,
        help="after every precheck passed, activate PHASE (the registered phases take the "
        "options listed below)",
    )
    group.addoption(
        "--plan",
        dest="nexus_plan",
        action="store_true",
        help="run the prechecks and show the flag diff; change nothing",
    )
    group.addoption(
        "--force-soak",
        dest="nexus_force_soak",
        action="store_true",
        help="move up before the soak time is over (audited)",
    )
    group.addoption(
        "--prepare",
        dest="nexus_prepare",
        action="store_true",
        help="a deployment that activates nothing: the prechecks, the lock, a restore point of "
        "the flag table and its rollback script (what the runbook's deployment script runs)",
    )
    group.addoption(
        "--emergency",
        dest="nexus_emergency",
        metavar="REASON",
        default=None,
        help="an emergency move down (a feature off, founder mode): runs even with red prechecks "
        "(only the write's own needs must hold: configs valid, database, lock); audited",
    )
    group.addoption(
        "--lock-timeout",
        dest="nexus_lock_timeout",
        metavar="SECONDS",
        default=None,
        help="wait up to SECONDS for another deployment's lock (default: 0, refuse at once)",
    )


# pytest's options that only show something (tests, fixtures, markers, help) and run nothing.
SHOW_ONLY_OPTIONS = ("collectonly", "showfixtures", "show_fixtures_per_test", "setupplan")
NO_SESSION_OPTIONS = ("help", "markers", "version")  # not even a collection


def show_only(option: Any) -> bool:
    """Whether this pytest invocation only shows something: then the target is not touched,
    and nothing is written (no audit log, report, lock or `latest`)."""
    names = SHOW_ONLY_OPTIONS + NO_SESSION_OPTIONS
    return any(getattr(option, name, False) for name in names)


def without_session(option: Any) -> bool:
    """Whether pytest ends before any session: --help, --markers, --version."""
    return any(getattr(option, name, False) for name in NO_SESSION_OPTIONS)


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser) -> None:
    # Runs after the options are parsed and before the suite is imported: the window in which
    # a slow probe can run for free (see nexus_deploy.suite.prefetch), and in which the
    # collector can be held off until the tests are collected (see ...suite.startup_gc).
    if not (early_config.rootpath / TARGETS_DIR).is_dir():
        # Another pytest run in this environment (the deployer's own tests, say), or a rootdir
        # moved by `--target /x/t.yaml`: the phases' options still parse then, so that the
        # plugin can say what went wrong rather than argparse "unrecognized arguments".
        known = early_config.known_args_namespace
        if known.nexus_activate is not None or known.nexus_target is not None:
            add_phase_options(parser)
        return
    from nexus_deploy.suite import prefetch, startup_gc  # imported here: every pytest run loads us

    startup_gc.pause()
    early_config.add_cleanup(startup_gc.resume)  # if collection never finishes
    if not show_only(early_config.known_args_namespace):  # a listing runs nothing on the target
        prefetch.start_early(early_config)
    # The phases' own options (--step, --mode...), added once the probe runs: the phase modules
    # load pydantic, which would hold it back by ~0.15 s. pytest parses the whole command line
    # again after this hook, as it does for the options a conftest.py adds.
    add_phase_options(parser)


def add_phase_options(parser: pytest.Parser) -> None:
    """Every registered phase's activation options, each flag once."""
    from nexus_deploy import phases

    try:
        options = phases.all_options()
    except phases.RegistryError as exc:  # another package's phase: say which, not a traceback
        raise pytest.UsageError(f"nexus-deploy: {exc}") from None
    group = parser.getgroup("nexus-deploy")
    for option in options:
        group.addoption(option.flag, dest=option.dest, metavar=option.metavar, help=option.help)
