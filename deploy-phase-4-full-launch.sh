#!/usr/bin/env bash
# The platform runbook's one-line deployment (step 2 of its deployment instructions), as a thin
# wrapper over the nexus-deploy suite: the twelve prechecks, the phase configs validated, the
# deployment lock, a restore point of the whole flag table (backup directory) and a rollback
# script that returns the table to it (audit directory), an audit log that ends in
# DEPLOYMENT_COMPLETE. It activates nothing: `nexusctl marketplace enable` and
# `nexusctl launch` do, when the operator decides.
#
#   ./deploy-phase-4-full-launch.sh [--target=NAME|FILE] [pytest options]
#
# Exit codes are pytest's, as README.md lists them: 0 deployed, 1 a precheck failed or the lock
# was held, 4 a usage error.
set -euo pipefail
here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
cd "$here"
exec "$here/.venv/bin/python" -m pytest --prepare "$@"
