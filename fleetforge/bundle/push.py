"""Push the offline ISO bundle to each host's ISO directory (``deploys/iso_bundle.py``).

Per host, while pyinfra prepares: one ``IsoDir`` fact (sizes and sha256 of what the host has,
its disk use, the directory's owner and mode), then ``plan_push``. Nothing is sent for a host
whose disk would pass 90 % or whose ISO directory another user could write to (the host fails
with the reason; nothing is written there). Otherwise each missing or changed file is uploaded
into a private directory made for it, its sha256 checked *on the host*, and only then renamed
over ``<name>``; files that match are not sent. Other files of the directory are left alone
unless ``iso_prune`` is set. ``--dry`` reports the same plan (files, bytes, disk use) without
sending.

Writing as root never follows a symbolic link someone else put in the ISO directory: each upload
goes to ``.fleetforge-upload-<128 random bits>/<name>``, a directory ``mkdir`` creates afresh
(mode 0700; ``mkdir`` fails on any existing entry, a symbolic link included); files reach their
place by rename(2) (``mv -T``), which replaces a link instead of writing through it; the sums
list is written in the private directory (or a ``mktemp`` file) and renamed too, and only read
when it is a regular file. Host file names (pruning) are single quoted words.
"""

from __future__ import annotations

import posixpath
import re
import secrets
from pathlib import Path

from pyinfra import host, logger
from pyinfra.api import FileUploadCommand, FunctionCommand, QuoteString, StringCommand, deploy, operation

from fleetforge.bundle.manifest import NAME_PATTERN, BundleError, BundleIndex
from fleetforge.bundle.plan import PushPlan, plan_push
from fleetforge.facts.iso_dir import IsoDir
from fleetforge.settings import inventory_settings

UPLOAD_PREFIX = ".fleetforge-upload-"
# Verify the uploaded copy on the host, rename it into place, record its sum for IsoDir.
INSTALL_SCRIPT = r"""
private=$1; dir=$2; name=$3; want=$4
tmp="$private/$name"; final="$dir/$name"; sums="$dir/.fleetforge-sums"
got=$(sha256sum < "$tmp" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
  rm -rf -- "$private"; echo "fleetforge: $name: sha256 on the host is $got, expected $want; not installed" >&2; exit 1
fi
chmod 644 -- "$tmp" && mv -f -T -- "$tmp" "$final" || { rm -rf -- "$private"; exit 1; }
size=$(stat -c %s "$final"); mtime=$(stat -c %Y "$final")
[ -f "$sums" ] && [ ! -L "$sums" ] || sums=/dev/null
{ n=$name awk 'NF == 4 && $1 != ENVIRON["n"]' "$sums"
  printf '%s %s %s %s\n' "$name" "$size" "$mtime" "$want"; } > "$private/sums"
chmod 644 "$private/sums" && mv -f -T -- "$private/sums" "$dir/.fleetforge-sums" && rmdir -- "$private"
"""

# Drop pruned names from the sums list (a new file made by mktemp, then renamed over it).
PRUNE_SCRIPT = r"""
sums="$1/.fleetforge-sums"; shift
if [ -f "$sums" ] && [ ! -L "$sums" ]; then
  new=$(mktemp "$sums.XXXXXXXXXX") || exit 1
  awk 'BEGIN {for (i = 1; i < ARGC; i++) drop[ARGV[i]] = 1; ARGC = 1} NF == 4 && !($1 in drop)' "$@" < "$sums" > "$new"
  chmod 644 "$new" && mv -f -T -- "$new" "$sums"
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
    if plan.send:
        yield StringCommand("mkdir", "-p", "--", QuoteString(iso_dir))
    for entry in plan.send:
        if not re.fullmatch(NAME_PATTERN, entry.name):  # index.json is checked by fetch; never a path here
            raise BundleError(f"bundle {bundle_dir}: index entry {entry.name!r} is not a plain file name")
        private = posixpath.join(iso_dir, UPLOAD_PREFIX + secrets.token_hex(16))
        yield StringCommand("mkdir", "-m", "700", "--", QuoteString(private))
        yield FileUploadCommand(str(Path(bundle_dir) / entry.name), posixpath.join(private, entry.name))
        yield StringCommand(
            "sh", "-c", QuoteString(INSTALL_SCRIPT), "fleetforge-iso",
            QuoteString(private), QuoteString(iso_dir), QuoteString(entry.name), entry.sha256,
        )  # fmt: skip
    if plan.prune:
        yield StringCommand("rm", "-f", "--", *[QuoteString(posixpath.join(iso_dir, name)) for name in plan.prune])
        # Only bundle names are in the sums list: plain words, never an awk option or assignment.
        listed = [QuoteString(name) for name in plan.prune if re.fullmatch(NAME_PATTERN, name)]
        if listed:
            yield StringCommand(
                "sh", "-c", QuoteString(PRUNE_SCRIPT), "fleetforge-iso-prune", QuoteString(iso_dir), *listed
            )


@deploy("fleetforge: ISO bundle")
def push_bundle() -> None:
    """Plan and push the bundle for the current host (see the module docstring).

    Raises ``SettingsError`` (bad host data) or ``BundleError`` (no fetched bundle) while
    preparing, before anything is sent.
    """
    settings = inventory_settings(host.inventory)[host.name]
    index = load_index(settings.iso_bundle)
    state = host.get_fact(IsoDir, iso_dir=settings.iso_dir)
    if state is None:  # the fact failed: pyinfra has marked the host failed
        return
    plan = plan_push(index, state, prune=settings.iso_prune)
    host.log(plan.summary(), logger.warning if plan.verdict != "ok" else logger.info)
    for name in state.unreadable_names:
        host.log(f"iso bundle: left alone {name} in {settings.iso_dir}: the name is not UTF-8", logger.warning)
    iso_push(
        name=f"ISO bundle -> {settings.iso_dir} ({len(plan.send)} files, {plan.send_bytes} bytes)",
        bundle_dir=settings.iso_bundle,
        iso_dir=settings.iso_dir,
        plan=plan,
    )
