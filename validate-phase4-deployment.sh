#!/usr/bin/env bash
# The platform runbook's pre-deployment validation (step 1): checks that this installation of
# nexus-deploy can deploy, each check for real and each able to fail, then "N/N tests passed".
#
#   bash validate-phase4-deployment.sh [--target=NAME|FILE]
#
# Exit 0 when every check passed, 1 otherwise. Changes nothing but a probe file it removes.
set -uo pipefail
here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
cd "$here"
python=$here/.venv/bin/python
target=${NEXUS_TARGET:-sandbox}
for argument in "$@"; do
  case "$argument" in
    --target=*) target=${argument#--target=} ;;
    *) echo "usage: bash $0 [--target=NAME|FILE]" >&2; exit 2 ;;
  esac
done
export NEXUS_TARGET=$target

passed=0
total=0
check() {  # check "what is checked" command...
  local what=$1 output
  shift
  total=$((total + 1))
  if output=$("$@" 2>&1); then
    passed=$((passed + 1))
    printf 'PASS  %s\n' "$what"
  else
    printf 'FAIL  %s\n' "$what"
    printf '%s\n' "$output" | tail -n 5 | sed 's/^/      /'
  fi
}

# The directories of the target profile (audit, backup, phase configs), read by the deployer's
# own loader.
directories() {
  "$python" - <<'PY'
from pathlib import Path
from nexus_deploy.config.profile import load_profile
from nexus_deploy.config.targets import resolve_target_path
import os
profile = load_profile(resolve_target_path(os.environ["NEXUS_TARGET"], Path.cwd()))
print(profile.audit.dir)
print(profile.backup.dir)
print(Path.cwd() / profile.config.dir)
PY
}

writable() {  # a probe file, written and removed, for root as for anyone
  local probe="$1/.nexus-validate-$$"
  : > "$probe" && rm -f "$probe"
}

commands_parse() {  # every ```sh block of a document is valid bash
  "$python" - "$1" <<'PY'
import re, subprocess, sys
text = open(sys.argv[1], encoding="utf-8").read()
blocks = re.findall(r"^```(?:sh|bash)\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
if not blocks:
    sys.exit(f"{sys.argv[1]}: no shell block")
for block in blocks:
    subprocess.run(["bash", "-n"], input=block, text=True, check=True)
PY
}

check "the deployer's virtualenv runs" "$python" -c "import nexus_deploy, pytest, testinfra"
check "nexusctl answers" "$here/.venv/bin/nexusctl" --help
check "the target profile $target loads" "$python" -c "
import os
from pathlib import Path
from nexus_deploy.config.profile import load_profile
from nexus_deploy.config.targets import resolve_target_path
load_profile(resolve_target_path(os.environ['NEXUS_TARGET'], Path.cwd()))"
check "the suite collects its prechecks and activation tests" \
  "$python" -m pytest --collect-only -q --activate=phase3 --step=0
check "deploy-phase-4-full-launch.sh is executable and parses" \
  bash -c 'test -x deploy-phase-4-full-launch.sh && bash -n deploy-phase-4-full-launch.sh'
for document in docs/PHASE_4_DEPLOYMENT_GUIDE.md docs/PHASE_4_QUICK_REFERENCE.md; do
  check "$document exists and its commands parse" commands_parse "$document"
done
if dirs=$(directories 2>&1); then
  audit_dir=$(printf '%s\n' "$dirs" | sed -n 1p)
  backup_dir=$(printf '%s\n' "$dirs" | sed -n 2p)
  config_dir=$(printf '%s\n' "$dirs" | sed -n 3p)
  check "the phase configs in $config_dir are valid and consistent" "$python" -c "
import sys
from pathlib import Path
from nexus_deploy.phases import load_phase_configs, registered
from nexus_deploy.phases.base import ConfigError
if not registered():
    sys.exit('no phase is registered (entry-point group nexus_deploy.phases)')
try:
    load_phase_configs(Path(sys.argv[1]))
except ConfigError as exc:
    sys.exit(str(exc))" "$config_dir"
  check "the audit directory $audit_dir is writable" writable "$audit_dir"
  check "the backup directory $backup_dir is writable" writable "$backup_dir"
else
  check "the target profile names its directories" false
fi

echo "$passed/$total tests passed"
[ "$passed" -eq "$total" ]
