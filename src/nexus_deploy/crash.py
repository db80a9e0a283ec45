"""Named points at which the crash tests kill the deployer, and nothing else.

With ``NEXUS_DEPLOY_CRASH_AT=<point>`` the process sends itself SIGKILL on reaching ``<point>``:
no handler, no cleanup, as `kill -9` or a power cut would end it. Unset, as in every real run,
a point costs one environment lookup. tests/test_crashes.py uses them to prove what a crash at
each point leaves behind: flags all old or all new, the lock free, the right rollback script,
an audit log that claims nothing that did not happen.
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "NEXUS_DEPLOY_CRASH_AT"
POINTS = (
    "after-lock",  # the lock taken, nothing else done
    "after-restore-point",  # the whole table saved
    "after-write-ahead",  # the rollback script on disk, inside the transaction
    "inside-transaction",  # every row written, not committed
    "after-commit",  # committed, nothing audited of it yet
    "during-verification",  # committed and audited, the gateway being asked
    "during-auto-rollback",  # verification failed, the restore written, not committed
)


def point(name: str) -> None:
    """Die here if the crash tests asked for it."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
