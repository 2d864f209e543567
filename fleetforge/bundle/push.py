"""Push the offline ISO bundle to each host's ISO directory (``deploys/iso_bundle.py``).

Per host, while pyinfra prepares: one ``IsoDir`` fact (sizes and sha256 of what the host has,
and its disk use), then ``plan_push``. Nothing is sent for a host whose disk would pass 90 %
(the host fails with the reason; nothing is written there). Otherwise each missing or changed
file is uploaded to ``.<name>.fleetforge-tmp`` in the ISO directory, its sha256 checked *on the
host*, and only then renamed over ``<name>``; files that match are not sent. Other files of the
directory are left alone unless ``iso_prune`` is set. ``--dry`` reports the same plan (files,
bytes, disk use) without sending.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

from pyinfra import host, logger
from pyinfra.api import FileUploadCommand, FunctionCommand, QuoteString, StringCommand, deploy, operation

from facts.iso_dir import SUMS_FILE, IsoDir
from fleetforge.bundle.manifest import BundleError, BundleIndex
from fleetforge.bundle.plan import PushPlan, plan_push
from fleetforge.settings import settings_from_data

# Verify the uploaded copy on the host, rename it into place, record its sum for IsoDir.
INSTALL_SCRIPT = r"""
tmp=$1; final=$2; want=$3; name=$4; sums=$5
got=$(sha256sum "$tmp" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
  rm -f "$tmp"; echo "fleetforge: $name: sha256 on the host is $got, expected $want; not installed" >&2; exit 1
fi
mv -f "$tmp" "$final"
size=$(stat -c %s "$final"); mtime=$(stat -c %Y "$final")
{ awk -v n="$name" '$1 != n' "$sums" 2>/dev/null
  printf '%s %s %s %s\n' "$name" "$size" "$mtime" "$want"; } > "$sums.tmp"
mv -f "$sums.tmp" "$sums"
"""

PRUNE_SCRIPT = r"""
dir=$1; shift; sums="$dir/.fleetforge-sums"
for name in "$@"; do rm -f -- "$dir/$name"; done
if [ -f "$sums" ]; then
  awk 'BEGIN {for (i = 1; i < ARGC; i++) drop[ARGV[i]] = 1; ARGC = 1} !($1 in drop)' "$@" < "$sums" > "$sums.tmp"
  mv -f "$sums.tmp" "$sums"
fi
"""


def load_index(bundle_dir: str) -> BundleIndex:
    """The bundle's index; raises ``BundleError`` if the bundle was never fetched."""
    index = BundleIndex.load(bundle_dir)
    if not index.files:
        raise BundleError(f"bundle {bundle_dir}: no verified files (run: fleetforge bundle fetch MANIFEST)")
    return index


@operation()
def iso_push(bundle_dir: str, iso_dir: str, plan: PushPlan):
    """Send ``plan.send`` from ``bundle_dir`` to ``iso_dir``, verified on the host; prune ``plan.prune``.

    + bundle_dir: local bundle directory (its ``index.json`` gave the plan)
    + iso_dir: absolute directory on the host
    + plan: from ``plan_push``; a ``refuse`` verdict fails the host without writing anything
    """
    if plan.verdict == "refuse":

        def refuse(state, host, reason=plan.reason) -> bool:
            host.log_styled(f"iso bundle: {reason}", fg="red", log_func=logger.error)
            return False

        yield FunctionCommand(refuse, (), {})
        return
    if not plan.send and not plan.prune:
        host.noop(f"iso bundle: {plan.up_to_date} file(s) up to date, 0 bytes to send")
        return
    sums = posixpath.join(iso_dir, SUMS_FILE)
    if plan.send:
        yield StringCommand("mkdir", "-p", QuoteString(iso_dir))
    for entry in plan.send:
        final = posixpath.join(iso_dir, entry.name)
        tmp = posixpath.join(iso_dir, f".{entry.name}.fleetforge-tmp")
        yield FileUploadCommand(str(Path(bundle_dir) / entry.name), tmp)
        yield StringCommand(
            "sh", "-c", QuoteString(INSTALL_SCRIPT), "fleetforge-iso",
            QuoteString(tmp), QuoteString(final), entry.sha256, QuoteString(entry.name), QuoteString(sums),
        )  # fmt: skip
    if plan.prune:
        yield StringCommand(
            "sh", "-c", QuoteString(PRUNE_SCRIPT), "fleetforge-iso-prune", QuoteString(iso_dir),
            *[QuoteString(name) for name in plan.prune],
        )  # fmt: skip


@deploy("fleetforge: ISO bundle")
def push_bundle() -> None:
    """Plan and push the bundle for the current host (see the module docstring).

    Raises ``SettingsError`` (bad host data) or ``BundleError`` (no fetched bundle) while
    preparing, before anything is sent.
    """
    settings = settings_from_data(host.name, host.data.dict())
    index = load_index(settings.iso_bundle)
    state = host.get_fact(IsoDir, iso_dir=settings.iso_dir)
    if state is None:  # the fact failed: pyinfra has marked the host failed
        return
    plan = plan_push(index, state, prune=settings.iso_prune)
    host.log(plan.summary(), logger.warning if plan.verdict != "ok" else logger.info)
    iso_push(
        name=f"ISO bundle -> {settings.iso_dir} ({len(plan.send)} files, {plan.send_bytes} bytes)",
        bundle_dir=settings.iso_bundle,
        iso_dir=settings.iso_dir,
        plan=plan,
    )
