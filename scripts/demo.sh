#!/usr/bin/env bash
# The deployer's main job, end to end on the local sandbox, as an operator would run it:
# prechecks, the phase 3 marketplace walked from step 1 to 4, the phase 4 global launch,
# a rollback of that launch, a check of every audit log written on the way, and the prechecks
# of a four-node fleet.
# The 7-day soak between steps is overridden with --force-soak (audited): a demo cannot wait.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
nexusctl() { .venv/bin/nexusctl --target=sandbox "$@"; }
say() { printf '\n=== %s\n' "$*"; }

say "prechecks: twelve checks, nothing changed"
nexusctl precheck

say "start from founder mode with the marketplace off"
nexusctl launch --mode founder --confirm -- -q
nexusctl marketplace disable --phase 3 --confirm -- -q

say "plan step 1 (no --confirm: nothing changes)"
nexusctl marketplace enable --phase 3 --step 1 -- -q

say "phase 3, steps 1 to 4"
nexusctl marketplace enable --phase 3 --step 1 --confirm -- -q
for step in 2 3 4; do
  nexusctl marketplace enable --phase 3 --step "$step" --confirm --force-soak -- -q
done

say "phase 4: global launch"
nexusctl launch --mode global --confirm -- -q
nexusctl status

say "roll the launch back with its rollback script"
nexusctl rollback
nexusctl status

say "every audit log is intact"
audit_dir=/var/lib/nexus-sandbox/audit
nexusctl audit verify "$audit_dir"/*.log | tail -n 5
nexusctl history | tail -n 12

say "a fleet: four API nodes over ssh (sandbox/up.sh --hosts 4), every node checked side by side"
.venv/bin/nexusctl --target=fleet precheck -- -q
