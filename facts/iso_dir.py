"""``IsoDirState``: what a host's ISO directory holds and how full its filesystem is, in one round
trip (``deploys/iso_bundle.py``, ``fleetforge bundle status``).

For each regular file in the directory: size and sha256. Hashing gigabytes on every run would
cost minutes, so the sha256 comes from the directory's ``.fleetforge-sums`` list (written by the
push after it verified a file on the host) when the file's size and mtime still match it; any
other file is hashed. Plus the filesystem's size/used/available bytes (``df`` of the directory,
or of its nearest existing parent when it does not exist yet).
"""

from __future__ import annotations

from pyinfra.api import FactBase, QuoteString, StringCommand

from facts.sections import parse_or_fail, split_sections
from fleetforge.models import Model

SUMS_FILE = ".fleetforge-sums"

SCRIPT = r"""
export LC_ALL=C
dir=$1; sums="$dir/.fleetforge-sums"
p=$dir; while [ ! -d "$p" ]; do p=$(dirname "$p"); done
echo @@df; df -P -B1 "$p" | awk 'NR == 2 {print $2, $3, $4}'
echo @@exists; if [ -d "$dir" ]; then echo yes; else echo no; fi
echo @@files
if [ -d "$dir" ]; then
  for f in "$dir"/*; do
    [ -f "$f" ] || continue
    name=${f##*/}
    size=$(stat -c %s "$f"); mtime=$(stat -c %Y "$f")
    sum=$(awk -v n="$name" -v s="$size" -v m="$mtime" '$1 == n && $2 == s && $3 == m {print $4}' "$sums" 2>/dev/null)
    [ -n "$sum" ] || sum=$(sha256sum "$f" | cut -d' ' -f1)
    printf '%s %s %s\n' "$size" "$sum" "$name"
  done
fi
echo @@done
"""


class RemoteFile(Model):
    size_bytes: int
    sha256: str


class IsoDirState(Model):
    """A host's ISO directory: whether it exists, its files, and its filesystem in bytes."""

    exists: bool
    fs_size_bytes: int
    fs_used_bytes: int
    fs_avail_bytes: int
    files: dict[str, RemoteFile]


def parse_iso_dir(output: list[str]) -> IsoDirState:
    sections = split_sections(output, "IsoDirState", required=("df", "exists", "files", "done"))
    size, used, avail = (int(x) for x in sections["df"][0].split())
    files = {}
    for line in sections["files"]:
        file_size, sha256, name = line.split(" ", 2)
        if len(sha256) != 64:
            raise ValueError(f"bad sha256 for {name!r}: {sha256!r}")
        files[name] = RemoteFile(size_bytes=int(file_size), sha256=sha256)
    return IsoDirState(
        exists=sections["exists"] == ["yes"], fs_size_bytes=size, fs_used_bytes=used, fs_avail_bytes=avail, files=files
    )


class IsoDir(FactBase[IsoDirState]):
    """The ISO directory ``iso_dir`` (absolute path) of the host: ``IsoDirState``.

    Raises ``FactProcessError`` (this host only) on incomplete or malformed output.
    """

    def command(self, iso_dir: str) -> StringCommand:
        return StringCommand("sh", "-c", QuoteString(SCRIPT), "fleetforge-iso-dir", QuoteString(iso_dir))

    def process(self, output: list[str]) -> IsoDirState:
        return parse_or_fail("IsoDir", parse_iso_dir, output)
