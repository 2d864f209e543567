#!/usr/bin/env bash
# The main job on the built-in local test hosts: set up, start the VMs, deploy, verify.
#   scripts/main.sh            # fresh machine: installs everything it needs first
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
fleetforge testbed up
pyinfra -y inventory.py deploys/vps.py
fleetforge verify inventory.py
