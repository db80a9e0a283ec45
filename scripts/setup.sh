#!/usr/bin/env bash
# Install what nexus-deploy needs on a fresh Debian 12 machine, as root: the Debian packages of the
# sandbox and the prechecks, and the virtualenv at .venv. Idempotent and quick when already done:
# apt runs only for a missing package, pip only when pyproject.toml or constraints.txt changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

packages=(docker.io docker-compose nginx postgresql-client openssl debootstrap git ca-certificates
          python3-venv openssh-server chromium)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
stamp=.venv/.nexus-installed
wanted=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "[setup] installing nexus-deploy and its pinned dependencies into .venv"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -c constraints.txt -e '.[dev]'
  echo "$wanted" > "$stamp"
fi
# The audit key: outside every audit directory, owner-only (see src/nexus_deploy/config/auditkey.py).
if [ ! -s /etc/nexus-deploy/audit.key ]; then
  install -d -m 0700 /etc/nexus-deploy
  (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > /etc/nexus-deploy/audit.key)
  echo "[setup] audit key made: /etc/nexus-deploy/audit.key"
fi
install -d -m 0700 /var/lib/nexus-deploy
# nexusctl on PATH, as the runbook types it (a link, so the checkout stays the one that runs).
if [ -w /usr/local/bin ] && [ "$(readlink /usr/local/bin/nexusctl)" != "$PWD/.venv/bin/nexusctl" ]; then
  ln -sfn "$PWD/.venv/bin/nexusctl" /usr/local/bin/nexusctl
  echo "[setup] nexusctl on PATH: /usr/local/bin/nexusctl -> $PWD/.venv/bin/nexusctl"
fi
echo "[setup] ready: $(.venv/bin/python --version), $(.venv/bin/pytest --version 2>&1)"
