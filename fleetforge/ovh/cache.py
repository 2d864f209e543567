"""A short-lived cache of the OVH API's answers, so a run does not call the API per host or per
``pyinfra`` invocation.

One JSON file per account: ``$XDG_CACHE_HOME/fleetforge/ovh/<key>.json`` (``~/.cache/...`` when
``XDG_CACHE_HOME`` is unset or not absolute), the directory 0700 and the file 0600, written
atomically (a temporary file in the same directory, fsync, ``os.replace``). ``<key>`` is a SHA-256
of the endpoint URL, the application key, the consumer key and the kinds listed: the keys
themselves are never written, and two accounts used with one application key do not share a
file. The file holds the endpoint URL, the time of the fetch and the answers, nothing else.

A cache file that is unreadable, malformed (not the shape ``fetch_account`` gives), not ours,
group/world accessible or from another endpoint is ignored (the API is asked again); a cache
that cannot be written is reported by the caller and the run goes on.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

FORMAT = 1


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/fleetforge/ovh`` (XDG Base Directory spec: a relative value is ignored),
    else ``~/.cache/fleetforge/ovh``."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / "fleetforge" / "ovh"


def cache_path(endpoint: str, application_key: str, consumer_key: str, kinds: Iterable[str]) -> Path:
    """The cache file of this endpoint URL, key pair and kinds (``("vps", "dedicated")``)."""
    material = "\0".join([endpoint, application_key, consumer_key, ",".join(sorted(kinds))])
    return cache_dir() / f"{hashlib.sha256(material.encode()).hexdigest()[:40]}.json"


def read_cache(path: Path, endpoint: str, max_age_s: float, now: float | None = None) -> dict[str, Any] | None:
    """The cached answers (``{"vps": [...], "dedicated": [...]}``) if ``path`` holds answers from
    ``endpoint`` fetched less than ``max_age_s`` seconds ago (and not in the future); else ``None``.
    Raises nothing."""
    now = time.time() if now is None else now
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
            return None
        try:
            cached = json.loads(f.read(64 * 1024 * 1024))
        except (OSError, ValueError, RecursionError):  # RecursionError: JSON nested too deep
            return None
    if not isinstance(cached, dict) or cached.get("format") != FORMAT or cached.get("endpoint") != endpoint:
        return None
    fetched_at, account = cached.get("fetched_at"), cached.get("account")
    if not isinstance(fetched_at, int | float) or not _is_account(account):
        return None
    return account if 0 <= now - fetched_at < max_age_s else None


def _is_account(account: Any) -> bool:
    """Whether ``account`` has the shape ``fetch_account`` gives: ``{"vps": [record],
    "dedicated": [record]}``, each record an object. What is inside a record is checked again by
    the inventory, as for an API answer."""
    if not isinstance(account, dict) or not set(account) <= {"vps", "dedicated"}:
        return False
    return all(isinstance(records, list) and all(isinstance(r, dict) for r in records) for records in account.values())


def _private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) 0700; make an existing one of ours 0700. Raises
    ``OSError`` if it is not a directory of ours."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.stat(path, follow_symlinks=False)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise OSError(f"{path} is not a directory owned by this user")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)


def write_cache(path: Path, endpoint: str, account: dict[str, Any], now: float | None = None) -> None:
    """Store ``account`` (JSON-able) for ``endpoint`` at ``path``, atomically, 0600 in a 0700
    directory. Raises ``OSError`` (nothing is left behind) if it cannot."""
    _private_dir(path.parent)
    payload = {"format": FORMAT, "endpoint": endpoint, "fetched_at": time.time() if now is None else now}
    payload["account"] = account
    from fleetforge.measure.results import write_atomic  # temp file, fsync, rename, directory fsync

    write_atomic(path, json.dumps(payload, separators=(",", ":")), mode=0o600)
