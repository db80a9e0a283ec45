"""The deployer's command-line options, registered through the ``pytest11`` entry point.

Registered early so that pytest parses ``--target /path/file.yaml`` as an option with a value,
not as a test path that would move the rootdir. The options do nothing until the deployment
suite's conftest.py loads ``nexus_deploy.plugin``.
"""

from __future__ import annotations

from pathlib import Path

import pytest


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
