"""Find the Debian mirror to build from: the controller's own apt sources, never a hard-coded host.

Order:
1. ``$FLEETFORGE_DEBIAN_MIRROR``: whitespace- or comma-separated URIs; each is used for the suites
   ``bookworm`` and ``bookworm-updates`` (component ``main``). A value starting with ``deb `` is
   taken as one-line apt source entries separated by ``;`` or newlines and passed verbatim.
2. deb822 files ``/etc/apt/sources.list.d/*.sources`` (``Types: deb``, ``URIs:``, ``Suites:``).
3. one-line files ``/etc/apt/sources.list`` and ``/etc/apt/sources.list.d/*.list``.

Entries for ``bookworm``, ``bookworm-updates`` and ``bookworm-security`` are kept (component
``main`` only); at least one ``bookworm`` entry is required.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import MirrorNotFoundError

ENV_MIRROR = "FLEETFORGE_DEBIAN_MIRROR"
SUITE = "bookworm"
WANTED_SUITES = (SUITE, f"{SUITE}-updates", f"{SUITE}-security")


@dataclass(frozen=True)
class AptSource:
    """One apt source: ``deb URI SUITE main``."""

    uri: str
    suite: str
    components: str = "main"

    def line(self) -> str:
        """One-line apt format, as mmdebstrap takes it for a MIRROR argument."""
        return f"deb {self.uri} {self.suite} {self.components}"


def _parse_deb822(text: str) -> list[AptSource]:
    out: list[AptSource] = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for raw in stanza.splitlines():
            if raw.startswith("#") or not raw.strip():
                continue
            if raw[0] in " \t" and key:
                fields[key] += " " + raw.strip()
                continue
            if ":" in raw:
                key, _, value = raw.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        comps = fields.get("components", "").split()
        if "main" not in comps:
            continue
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                if suite in WANTED_SUITES:
                    out.append(AptSource(uri.rstrip("/"), suite))
    return out


def _parse_one_line(text: str) -> list[AptSource]:
    out: list[AptSource] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        line = re.sub(r"\[[^\]]*\]", " ", line)  # drop [options]
        parts = line.split()
        if len(parts) < 4:
            continue
        _, uri, suite, *comps = parts
        if suite in WANTED_SUITES and "main" in comps:
            out.append(AptSource(uri.rstrip("/"), suite))
    return out


def controller_sources(etc_apt: Path = Path("/etc/apt")) -> list[AptSource]:
    """Bookworm sources configured on this machine (deb822 first, then one-line), deduplicated."""
    found: list[AptSource] = []
    d = etc_apt / "sources.list.d"
    if d.is_dir():
        for f in sorted(d.glob("*.sources")):
            found += _parse_deb822(f.read_text(errors="replace"))
    one_line = [etc_apt / "sources.list"]
    if d.is_dir():
        one_line += sorted(d.glob("*.list"))
    for f in one_line:
        if f.is_file():
            found += _parse_one_line(f.read_text(errors="replace"))
    seen: set[AptSource] = set()
    return [s for s in found if not (s in seen or seen.add(s))]


def mirror_lines(env: Mapping[str, str] | None = None, etc_apt: Path = Path("/etc/apt")) -> list[str]:
    """Return the apt source lines (``deb URI SUITE main``) to give mmdebstrap.

    Raises:
        MirrorNotFoundError: no ``bookworm`` source found and no override set.
    """
    env = os.environ if env is None else env
    override = env.get(ENV_MIRROR, "").strip()
    if override:
        if override.startswith("deb "):
            return [x.strip() for x in re.split(r"[;\n]", override) if x.strip()]
        uris = [u.rstrip("/") for u in re.split(r"[\s,]+", override) if u]
        return [AptSource(u, s).line() for u in uris for s in (SUITE, f"{SUITE}-updates")]
    sources = controller_sources(etc_apt)
    if not any(s.suite == SUITE for s in sources):
        raise MirrorNotFoundError(
            f"no '{SUITE}' main source found in {etc_apt}/sources.list(.d): "
            f"set {ENV_MIRROR}=http://YOUR-DEBIAN-MIRROR/debian"
        )
    return [s.line() for s in sources]
