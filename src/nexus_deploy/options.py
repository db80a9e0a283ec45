"""The deployer's command-line options, registered through the ``pytest11`` entry point.

Registered early so that pytest parses ``--target /path/file.yaml`` as an option with a value,
not as a test path that would move the rootdir. The options do nothing until the deployment
suite's conftest.py loads ``nexus_deploy.plugin``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nexus_deploy.targets import TARGETS_DIR


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
        help="after all twelve prechecks pass, activate phase3 (with --step) or phase4",
    )
    group.addoption(
        "--step",
        dest="nexus_step",
        metavar="N",
        default=None,
        help="marketplace step for phase3: 1 founders, 2 +creators, 3 +verified users, "
        "4 everyone with auctions, 0 marketplace off",
    )
    group.addoption(
        "--mode",
        dest="nexus_mode",
        metavar="global|founder",
        default=None,
        help="phase4 launch mode (default: global); founder returns to founder mode",
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
        help="open the next marketplace step before its soak time is over (audited)",
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
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    # Runs after the options are parsed and before the suite is imported: the window in which
    # a slow probe can run for free (see nexus_deploy.prefetch), and in which the collector can
    # be held off until the tests are collected (see nexus_deploy.startup_gc).
    if not (early_config.rootpath / TARGETS_DIR).is_dir():
        return  # another pytest run in this environment (the deployer's own tests, say)
    from nexus_deploy import prefetch, startup_gc  # imported here: every pytest run loads us

    startup_gc.pause()
    early_config.add_cleanup(startup_gc.resume)  # if collection never finishes
    prefetch.start_early(early_config)
