"""``IsoDirState``: what a host's ISO directory holds and how full its filesystem is, in one round
trip (``deploys/iso_bundle.py``, ``fleetforge bundle status``).

For each regular file in the directory (symbolic links are not counted: a push replaces them):
size and sha256. Hashing gigabytes on every run would cost minutes, so the sha256 comes from the
directory's ``.fleetforge-sums`` list (written by the push after it verified a file on the host)
when the file's size and mtime still match it; any other file is hashed. Plus the filesystem's
size/used/available bytes (``df`` of the directory, or of its nearest existing parent when it
does not exist yet), and the directory's owner and mode (``stat -L``: of the directory a
symbolic link names; ``fleetforge.bundle.plan`` refuses to write as root where another user
could swap files).

File names are host output and may hold any byte but ``/`` and NUL: the script prints each name
hex-encoded (``od``), so a newline, a backslash or a quote comes back exactly. A name that is
not UTF-8 cannot be compared with the bundle or passed on: it is listed in
``IsoDirState.unreadable_names`` (as ``repr``) and left alone; the other files are handled.
"""

from __future__ import annotations

from pyinfra.api import FactBase, QuoteString, StringCommand

from fleetforge.facts.models import Model
from fleetforge.facts.sections import SHA256, parse_or_fail, split_sections

SUMS_FILE = ".fleetforge-sums"

SCRIPT = r"""
export LC_ALL=C
dir=$1; sums="$dir/.fleetforge-sums"
[ -f "$sums" ] && [ ! -L "$sums" ] || sums=/dev/null
p=$dir; while [ ! -d "$p" ]; do p=$(dirname "$p"); done
echo @@df; df -P -B1 "$p" | awk 'NR == 2 {print $2, $3, $4}'
echo @@exists; if [ -d "$dir" ]; then echo yes; else echo no; fi
echo @@dir; [ -d "$dir" ] && printf '%s %s\n' "$(stat -L -c '%u %a' "$dir")" "$(id -u)"
echo @@files
if [ -d "$dir" ]; then
  for f in "$dir"/*; do
    [ -f "$f" ] && [ ! -L "$f" ] || continue
    name=${f##*/}
    size=$(stat -c %s "$f"); mtime=$(stat -c %Y "$f")
    sum=$(n=$name awk -v s="$size" -v m="$mtime" \
      '$1 == ENVIRON["n"] && $2 == s && $3 == m && length($4) == 64 && $4 !~ /[^0-9a-f]/ {print $4}' "$sums")
    [ -n "$sum" ] || sum=$(sha256sum < "$f" | cut -d' ' -f1)
    printf '%s %s %s\n' "$size" "$sum" "$(printf %s "$name" | od -An -v -tx1 | tr -d ' \n')"
  done
fi
echo @@done
"""


class RemoteFile(Model):
    size_bytes: int
    sha256: str


class IsoDirState(Model):
    """A host's ISO directory: whether it exists, its files (exact names), its filesystem in
    bytes, its owner uid and mode and the uid that read it (``None`` when it does not exist),
    and the ``repr`` of names that are not UTF-8 (left alone)."""

    exists: bool
    fs_size_bytes: int
    fs_used_bytes: int
    fs_avail_bytes: int
    files: dict[str, RemoteFile]
    dir_owner_uid: int | None = None
    dir_mode: int | None = None
    runner_uid: int | None = None
    unreadable_names: list[str] = []


def _name(hex_name: str) -> str | bytes:
    """The file name printed as hex: ``str``, or the raw ``bytes`` when it is not UTF-8. Raises
    ``ValueError`` for what no directory entry can be called (empty, ``.``, ``..``, ``/``, NUL)."""
    raw = bytes.fromhex(hex_name)
    if raw in (b"", b".", b"..") or b"/" in raw or b"\0" in raw:
        raise ValueError(f"not a file name: {raw!r}")
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw


def parse_iso_dir(output: list[str]) -> IsoDirState:
    """Pure parser: ``SCRIPT`` stdout lines -> ``IsoDirState``; ``ValueError`` when malformed."""
    sections = split_sections(output, "IsoDirState", required=("df", "exists", "files", "done"))
    size, used, avail = (int(x) for x in sections["df"][0].split())
    owner = mode = runner = None
    if sections.get("dir"):
        owner_text, mode_text, runner_text = sections["dir"][0].split(" ")
        owner, mode, runner = int(owner_text), int(mode_text, 8), int(runner_text)
    files, unreadable = {}, []
    for line in sections["files"]:
        file_size, sha256, hex_name = line.split(" ")
        name = _name(hex_name)
        if not SHA256.fullmatch(sha256):
            raise ValueError(f"bad sha256 for {name!r}: {sha256!r}")
        if isinstance(name, bytes):
            unreadable.append(repr(name))
            continue
        files[name] = RemoteFile(size_bytes=int(file_size), sha256=sha256)
    return IsoDirState(
        exists=sections["exists"] == ["yes"], fs_size_bytes=size, fs_used_bytes=used, fs_avail_bytes=avail,
        files=files, dir_owner_uid=owner, dir_mode=mode, runner_uid=runner, unreadable_names=unreadable,
    )  # fmt: skip


class IsoDir(FactBase[IsoDirState]):
    """The ISO directory ``iso_dir`` (absolute path) of the host: ``IsoDirState``.

    Raises ``FactProcessError`` (this host only) on incomplete or malformed output.
    """

    def command(self, iso_dir: str) -> StringCommand:
        return StringCommand("sh", "-c", QuoteString(SCRIPT), "fleetforge-iso-dir", QuoteString(iso_dir))

    def process(self, output: list[str]) -> IsoDirState:
        return parse_or_fail("IsoDir", parse_iso_dir, output)
