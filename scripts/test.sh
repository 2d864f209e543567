#!/usr/bin/env bash
# The test suite, VM tests included: set up, then pytest (extra arguments go to pytest).
#
# Called with options only (e.g. `scripts/test.sh -v --durations=15`), the suite runs as two
# pytest processes side by side. A TCG test VM keeps about one of the two cores busy while a
# deploy runs (57 % of 2 cores measured on the rollout tests), so the second process uses the
# idle core:
# - foreground: the VM tests on the default testbed (vm-blk-1, vm-scsi-1: `-m vm`, minus the
#   side modules);
# - background, one after the other: the tests that need no VM (`-m "not vm"`, about 5 min
#   beside the VMs), then the VM test modules listed in tests/side-modules.txt, whose VMs are
#   their own (rollout, faults, NixOS, measured tuning, fleet report).
# The split keeps the two about equal (measured on a 2-core machine: foreground 40.7 min and
# background 29.5 min when the tests without VMs ran in the foreground). The testbed takes an
# inter-process lock for every VM change, so both may start and reset VMs. The background logs
# are printed when the foreground run ends; the last line adds up all three
# (`tests: N passed, N failed`) and the exit status is the worst of them.
# With a test path or any other positional argument, one plain pytest process runs.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh || exit $?
export PATH="$PWD/.venv/bin:$PATH"

for arg in "$@"; do
  if [[ $arg != -* ]]; then exec python -m pytest "$@"; fi
done

mapfile -t side < <(grep -v '^#' tests/side-modules.txt | grep .)
ignore=()
for module in "${side[@]}"; do ignore+=(--ignore "$module"); done
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

# fio-heavy VM tests run alone (tests/e2e/conftest.py): first among the side modules, last in the main run
background() {
  python -m pytest "$@" -m "not vm" tests >"$logs/unit.log" 2>&1
  local unit_rc=$?
  FLEETFORGE_IO_ALONE_ORDER=first python -m pytest "$@" "${side[@]}" >"$logs/side.log" 2>&1
  local side_rc=$?
  echo "$unit_rc $side_rc" >"$logs/background.rc"
}
background "$@" &
background_pid=$!
FLEETFORGE_IO_ALONE_ORDER=last python -m pytest "$@" -m vm tests "${ignore[@]}" 2>&1 | tee "$logs/main.log"
main_rc=${PIPESTATUS[0]}
wait "$background_pid"
read -r unit_rc side_rc <"$logs/background.rc" || { unit_rc=1; side_rc=1; }

echo
echo "================ tests without VMs (-m 'not vm'), beside the VM tests ================"
cat "$logs/unit.log"
echo
echo "================ side process: ${side[*]} ================"
cat "$logs/side.log"
python scripts/pytest_total.py "$logs/main.log" "$logs/unit.log" "$logs/side.log"
# pytest's 5 is "no tests collected": fine for one part when the others ran tests
total_rc=$?
for rc in "$main_rc" "$unit_rc" "$side_rc"; do
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then exit "$rc"; fi
done
exit "$total_rc"
