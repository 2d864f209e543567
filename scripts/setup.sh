#!/usr/bin/env bash
# Install what fleetforge and its local test hosts need on a fresh Debian 12 machine (as root):
# Debian packages through apt, then a Python virtualenv in .venv with the project installed.
# Idempotent: packages already installed and an existing .venv are kept.
set -euo pipefail
cd "$(dirname "$0")/.."

# qemu/mmdebstrap/disk tools build and run the test VMs (fleetforge.testbed.APT_PACKAGES);
# openssh-client reaches them (testbed and testinfra's ssh backend); iproute2 and
# openssh-server run the light SSH hosts (sshd per network namespace, fleetforge/testbed/sshd_hosts.py);
# xorriso makes the ISO 9660 images the ISO bundle tests serve; strace shows the managed-file
# writes' fsync order (tests/test_hostile_writes.py); chromium loads the measured-tuning report
# headless (tests/measure/test_report_browser.py).
APT_PACKAGES=(qemu-system-x86 qemu-utils mmdebstrap debian-archive-keyring e2fsprogs dosfstools
              gdisk zstd openssh-client nix-bin iproute2 openssh-server xorriso strace chromium)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.fleetforge-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
  touch "$stamp"
fi
