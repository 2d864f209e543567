"""The ISO bundle manifest (TOML) and the bundle index (JSON) that ``bundle fetch`` writes.

A manifest lists the files of an offline bundle::

    [[iso]]
    name = "debian-12.6.0-amd64-netinst.iso"          # file name in the bundle and on hosts
    url = "https://cdimage.debian.org/.../debian-12.6.0-amd64-netinst.iso"
    sha256 = "..."                                     # required: 64 hex digits
    sha512 = "..."                                     # optional: 128 hex digits
    blake2b = "..."                                    # optional: 128 hex digits (BLAKE2b-512)
    size = 661651456                                   # optional, bytes

Unknown keys, bad URLs (http, https or file only), malformed digests and duplicate names are
errors naming the entry. The index (``<bundle>/index.json``) lists the files that were
downloaded *and verified*, with their size and digests in three formats (sha256,
sha512, blake2b); only files in the index are ever pushed to hosts.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fleetforge.errors import FleetforgeError

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,200}$"
INDEX_FILE = "index.json"
DIGESTS = ("sha256", "sha512", "blake2b")


class BundleError(FleetforgeError):
    """A manifest or bundle that cannot be used; ``str()`` names the file, entry and key."""


class ManifestEntry(BaseModel):
    """One file of the bundle."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    url: str
    sha256: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")]
    sha512: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{128}$")] | None = None
    blake2b: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{128}$")] | None = None
    size: Annotated[int, Field(gt=0)] | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        scheme, sep, rest = value.partition("://")
        if not sep or scheme.lower() not in ("http", "https", "file") or not rest or " " in value:
            raise ValueError(f"expected an http://, https:// or file:// URL, got {value!r}")
        return value

    @field_validator("sha256", "sha512", "blake2b")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value else value

    def digests(self) -> dict[str, str]:
        """``{algorithm: hex}`` of the digests the manifest gives for this file."""
        return {alg: getattr(self, alg) for alg in DIGESTS if getattr(self, alg)}


class Manifest(BaseModel):
    """The whole manifest: ``entries`` in file order."""

    entries: list[ManifestEntry]
    path: str = ""


_MESSAGES = {
    "string_pattern_mismatch": {
        "sha256": "expected 64 hex digits",
        "sha512": "expected 128 hex digits",
        "blake2b": "expected 128 hex digits (BLAKE2b-512)",
        "name": "expected a file name of letters, digits, '.', '_', '+', '-'",
    }
}


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and validate a manifest.

    Returns:
        ``Manifest`` with the entries in file order.

    Raises:
        BundleError: unreadable TOML, no ``[[iso]]`` entry, or one line per bad key:
            ``manifest bundle.toml: iso 'debian': sha256: expected 64 hex digits, got 'abc'``.
    """
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise BundleError(f"manifest {path}: {e}") from None
    unknown = sorted(set(raw) - {"iso"})
    problems = [f"manifest {path}: unknown top-level key {key!r} (expected [[iso]] tables)" for key in unknown]
    items = raw.get("iso", [])
    if not isinstance(items, list) or not items:
        problems.append(f"manifest {path}: expected at least one [[iso]] table")
        items = []
    entries, seen = [], set()
    for i, item in enumerate(items):
        label = repr(item.get("name")) if isinstance(item, dict) and item.get("name") else f"#{i + 1}"
        try:
            entry = ManifestEntry.model_validate(item)
        except ValidationError as exc:
            for err in exc.errors():
                key = ".".join(str(p) for p in err["loc"]) or "entry"
                message = _MESSAGES.get(err["type"], {}).get(key) or err["msg"].removeprefix("Value error, ")
                if err["type"] == "extra_forbidden":
                    message = f"unknown key (expected: {', '.join(ManifestEntry.model_fields)})"
                elif "got" not in message and err["type"] != "missing":
                    message = f"{message}, got {err['input']!r}"
                problems.append(f"manifest {path}: iso {label}: {key}: {message}")
            continue
        if entry.name in seen:
            problems.append(f"manifest {path}: iso {label}: name: appears twice")
        seen.add(entry.name)
        entries.append(entry)
    if problems:
        raise BundleError("\n".join(problems))
    return Manifest(entries=entries, path=str(path))


class IndexEntry(BaseModel):
    """A verified file of the bundle: size in bytes, digests as lowercase hex."""

    name: str
    size_bytes: int
    sha256: str
    sha512: str
    blake2b: str
    url: str = ""
    mtime_ns: int = 0  # of the bundle's copy when verified; a changed file is hashed again


class BundleIndex(BaseModel):
    """``<bundle>/index.json``: the files ``bundle fetch`` verified, by name."""

    version: Literal[1] = 1
    files: dict[str, IndexEntry] = {}

    @classmethod
    def load(cls, bundle_dir: str | os.PathLike[str]) -> BundleIndex:
        """The index of ``bundle_dir`` (empty when there is none).

        Raises:
            BundleError: the index exists but is not valid JSON of this shape.
        """
        path = Path(bundle_dir) / INDEX_FILE
        if not path.exists():
            return cls()
        try:
            return cls.model_validate_json(path.read_text())
        except (ValidationError, ValueError) as e:
            raise BundleError(f"bundle index {path}: {e}") from None

    def save(self, bundle_dir: str | os.PathLike[str]) -> None:
        """Write the index atomically (temporary file, then rename)."""
        path = Path(bundle_dir) / INDEX_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.model_dump(), indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
