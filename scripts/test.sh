#!/usr/bin/env bash
# The test suite, VM tests included: set up, then pytest (extra arguments go to pytest).
#
# Called with options only (e.g. `scripts/test.sh -v --durations=15`), the suite runs as two
# pytest processes side by side: the VM test modules listed in tests/side-modules.txt, whose
# VMs are their own (rollout, faults, NixOS, measured tuning), in the background, and
# everything else in the foreground. A TCG test VM keeps about one of the two cores busy while
# a deploy runs (57 % of 2 cores measured on the rollout tests), so the second process uses the
# idle core. The testbed takes an inter-process lock for every VM change, so both may start and
# reset VMs. The side log is printed when the foreground run ends; the last line adds up both
# (`tests: N passed, N failed`) and the exit status is the worse of the two.
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

# fio-heavy VM tests run alone (tests/e2e/conftest.py): first in the side process, last in the main one
FLEETFORGE_IO_ALONE_ORDER=first python -m pytest "$@" "${side[@]}" >"$logs/side.log" 2>&1 &
side_pid=$!
FLEETFORGE_IO_ALONE_ORDER=last python -m pytest "$@" "${ignore[@]}" 2>&1 | tee "$logs/main.log"
main_rc=${PIPESTATUS[0]}
wait "$side_pid"
side_rc=$?

echo
echo "================ side process: ${side[*]} ================"
cat "$logs/side.log"
python scripts/pytest_total.py "$logs/main.log" "$logs/side.log"
# pytest's 5 is "no tests collected": fine for one half when the other ran tests
total_rc=$?
for rc in "$main_rc" "$side_rc"; do
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then exit "$rc"; fi
done
exit "$total_rc"
