"""``fleetforge bundle fetch``: download a manifest's files once, on the laptop, and verify them.

Per file (at most ``parallel`` at once, a progress bar each):

- already in the bundle index with the same size and modification time: skipped;
- present but not indexed (copied in by hand): hashed, kept if it matches, else set aside;
- otherwise downloaded to ``.<name>.part``; an interrupted download is resumed with an HTTP
  ``Range`` request from the bytes already there (a server that answers 200 instead of 206
  restarts it); sha256, sha512 and blake2b are computed while the bytes arrive;
- the result must match the manifest's size and every digest it gives; then it is renamed into
  place (atomic) and recorded in ``index.json``. A mismatching file is renamed
  ``<name>.rejected``, never put in the index, and reported.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from fleetforge.bundle.manifest import BundleIndex, IndexEntry, Manifest, ManifestEntry

CHUNK_BYTES = 1024 * 1024
TIMEOUT_S = 60  # per socket operation: a stalled server fails the file instead of hanging


@dataclass
class FileResult:
    """What happened to one file: ``status`` is downloaded, resumed, present, or failed."""

    name: str
    status: str
    fetched_bytes: int = 0
    error: str = ""


@dataclass
class FetchReport:
    """``results`` in manifest order; ``ok`` when no file failed."""

    results: list[FileResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.status != "failed" for r in self.results)

    @property
    def fetched_bytes(self) -> int:
        return sum(r.fetched_bytes for r in self.results)


def _hashers() -> dict[str, hashlib._Hash]:
    return {"sha256": hashlib.sha256(), "sha512": hashlib.sha512(), "blake2b": hashlib.blake2b()}


def _hash_file(path: Path, hashers: dict, progress: Callable[[int], None] | None = None) -> int:
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            for h in hashers.values():
                h.update(chunk)
            size += len(chunk)
            if progress:
                progress(len(chunk))
    return size


def _verify(entry: ManifestEntry, size: int, hashers: dict) -> str:
    """'' when ``size`` and the digests match the manifest, else what differs."""
    got = {alg: h.hexdigest() for alg, h in hashers.items()}
    if entry.size is not None and size != entry.size:
        return f"size mismatch: expected {entry.size} bytes, got {size}"
    for alg, want in entry.digests().items():
        if got[alg] != want:
            return f"{alg} mismatch: expected {want}, got {got[alg]}"
    return ""


def _index_entry(entry: ManifestEntry, path: Path, hashers: dict) -> IndexEntry:
    stat = path.stat()
    digests = {alg: h.hexdigest() for alg, h in hashers.items()}
    return IndexEntry(name=entry.name, size_bytes=stat.st_size, mtime_ns=stat.st_mtime_ns, url=entry.url, **digests)


class _Fetcher:
    def __init__(self, bundle_dir: Path, index: BundleIndex, progress: Progress):
        self.dir, self.index, self.progress = bundle_dir, index, progress

    def one(self, entry: ManifestEntry) -> FileResult:
        final = self.dir / entry.name
        task = self.progress.add_task(entry.name, total=entry.size)
        advance = lambda n: self.progress.advance(task, n)  # noqa: E731
        known = self.index.files.get(entry.name)
        stat = final.stat() if final.exists() else None
        if (
            stat
            and known
            and known.sha256 == entry.sha256
            and (known.size_bytes, known.mtime_ns)
            == (
                stat.st_size,
                stat.st_mtime_ns,
            )
        ):
            self.progress.update(task, total=known.size_bytes, completed=known.size_bytes)
            return FileResult(entry.name, "present")
        if final.exists():  # not indexed: trust nothing, hash it
            hashers = _hashers()
            size = _hash_file(final, hashers, advance)
            if not _verify(entry, size, hashers):
                self.index.files[entry.name] = _index_entry(entry, final, hashers)
                return FileResult(entry.name, "present")
            os.replace(final, self.dir / f"{entry.name}.rejected")
            self.progress.reset(task)
        return self._download(entry, task, advance)

    def _download(self, entry: ManifestEntry, task, advance) -> FileResult:
        part = self.dir / f".{entry.name}.part"
        hashers = _hashers()
        offset = _hash_file(part, hashers, advance) if part.exists() else 0
        request = urllib.request.Request(entry.url, headers={"Range": f"bytes={offset}-"} if offset else {})
        fetched, status = 0, "resumed" if offset else "downloaded"
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                if offset and getattr(response, "status", 200) != 206:  # Range not honoured: start over
                    hashers, offset, status = _hashers(), 0, "downloaded"
                    self.progress.reset(task)
                length = response.headers.get("Content-Length")
                if length is not None:
                    self.progress.update(task, total=offset + int(length))
                with open(part, "ab" if offset else "wb") as out:
                    while chunk := response.read(CHUNK_BYTES):
                        out.write(chunk)
                        for h in hashers.values():
                            h.update(chunk)
                        fetched += len(chunk)
                        advance(len(chunk))
                    out.flush()
                    os.fsync(out.fileno())
                if length is not None and fetched < int(length):
                    raise OSError(f"connection closed after {fetched} of {length} bytes")
        except urllib.error.HTTPError as e:
            if e.code == 416 and offset:  # the part is already complete
                pass
            else:
                return FileResult(entry.name, "failed", fetched, f"{entry.url}: HTTP {e.code} {e.reason}")
        except (OSError, urllib.error.URLError) as e:
            got = part.stat().st_size if part.exists() else 0
            reason = getattr(e, "reason", None) or e
            return FileResult(
                entry.name,
                "failed",
                fetched,
                f"download interrupted ({reason}) with {got} bytes in {part}; run again to resume",
            )
        size = part.stat().st_size
        problem = _verify(entry, size, hashers)
        if problem:
            rejected = self.dir / f"{entry.name}.rejected"
            os.replace(part, rejected)
            return FileResult(entry.name, "failed", fetched, f"{problem}; kept aside as {rejected}, not in the bundle")
        os.replace(part, self.dir / entry.name)
        self.index.files[entry.name] = _index_entry(entry, self.dir / entry.name, hashers)
        return FileResult(entry.name, status, fetched)


def fetch(
    manifest: Manifest, bundle_dir: str | os.PathLike[str], parallel: int = 3, quiet: bool = False
) -> FetchReport:
    """Download and verify every file of ``manifest`` into ``bundle_dir``; update its index.

    Args:
        manifest: from ``load_manifest``.
        bundle_dir: created if missing; holds the files, ``index.json``, partial downloads
            (``.<name>.part``) and rejected files (``<name>.rejected``).
        parallel: files downloaded at once.
        quiet: no progress bars (tests, non-terminals still get them on stderr otherwise).

    Returns:
        ``FetchReport``: per file its status, bytes fetched over the network in this run, error.
        Failures do not raise: the other files are still fetched and the index is written.
    """
    directory = Path(bundle_dir)
    directory.mkdir(parents=True, exist_ok=True)
    index = BundleIndex.load(directory)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=quiet, transient=False) as progress:
        fetcher = _Fetcher(directory, index, progress)
        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            results = list(pool.map(fetcher.one, manifest.entries))
    index.save(directory)
    return FetchReport(results)
