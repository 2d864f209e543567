"""``NixCacheKey``: the cache host's signing key as far as the controller may see it, in one
round trip: the *public* key's text, whether the secret key file exists and its mode, and
whether the cache directory holds a ``nix-cache-info``. The secret key is never read.
"""

from __future__ import annotations

import re

from pyinfra.api import FactBase, QuoteString, StringCommand

from fleetforge.facts.models import Model
from fleetforge.facts.sections import parse_or_fail, split_sections

_MODE = re.compile(r"[0-7]{3,4}")

SCRIPT = r"""
secret=$1; public=$2; cache=$3
echo @@public; [ -f "$public" ] && cat "$public" && echo
echo @@secret; if [ -f "$secret" ]; then stat -c %a "$secret"; fi
echo @@cache; if [ -f "$cache/nix-cache-info" ]; then echo yes; fi
echo @@done
"""

#: A Nix binary cache public key as nix-store --generate-binary-cache-key writes it: name:base64.
PUBLIC_KEY_TEXT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*:[A-Za-z0-9+/]+={0,2}")


class NixCacheKeyState(Model):
    """``public_key``: ``NAME:BASE64`` or ``None``; ``secret_mode``: octal string or ``None``."""

    public_key: str | None
    secret_mode: str | None
    cache_ready: bool

    @property
    def key_name(self) -> str | None:
        return self.public_key.split(":", 1)[0] if self.public_key else None


def parse_nix_cache_key(output: list[str]) -> NixCacheKeyState:
    """Pure parser of the fact's output. The public key goes into every client's nix.conf and
    NixOS modules, so it must be exactly ``NAME:BASE64`` (``NAME`` a key name); the mode octal.

    Raises ``ValueError`` naming the bad value (``parse_or_fail`` makes it a ``FactProcessError``).
    """
    sections = split_sections(output, "NixCacheKey", required=("public", "secret", "cache", "done"))
    lines = [line.strip() for line in sections["public"] if line.strip()]
    public = lines[0] if lines else None
    if len(lines) > 1 or (public is not None and not PUBLIC_KEY_TEXT.fullmatch(public)):
        raise ValueError(f"not a NAME:BASE64 public key: {'|'.join(lines)[:200]!r}")
    secret = sections["secret"][0].strip() if sections["secret"] else None
    if secret is not None and not _MODE.fullmatch(secret):
        raise ValueError(f"not an octal file mode: {secret[:20]!r}")
    return NixCacheKeyState(public_key=public, secret_mode=secret, cache_ready=sections["cache"] == ["yes"])


class NixCacheKey(FactBase[NixCacheKeyState]):
    """The signing key files ``secret``/``public`` and cache directory ``cache`` on the host."""

    def command(self, secret: str, public: str, cache: str) -> StringCommand:
        args = [QuoteString(x) for x in (secret, public, cache)]
        return StringCommand("sh", "-c", QuoteString(SCRIPT), "fleetforge-nix-cache", *args)

    def process(self, output: list[str]) -> NixCacheKeyState:
        return parse_or_fail("NixCacheKey", parse_nix_cache_key, output)
