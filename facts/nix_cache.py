"""``NixCacheKey``: the cache host's signing key as far as the controller may see it, in one
round trip: the *public* key's text, whether the secret key file exists and its mode, and
whether the cache directory holds a ``nix-cache-info``. The secret key is never read.
"""

from __future__ import annotations

from pyinfra.api import FactBase, QuoteString, StringCommand

from facts.sections import parse_or_fail, split_sections
from fleetforge.models import Model

SCRIPT = r"""
secret=$1; public=$2; cache=$3
echo @@public; [ -f "$public" ] && cat "$public" && echo
echo @@secret; if [ -f "$secret" ]; then stat -c %a "$secret"; fi
echo @@cache; if [ -f "$cache/nix-cache-info" ]; then echo yes; fi
echo @@done
"""


class NixCacheKeyState(Model):
    """``public_key``: ``NAME:BASE64`` or ``None``; ``secret_mode``: octal string or ``None``."""

    public_key: str | None
    secret_mode: str | None
    cache_ready: bool

    @property
    def key_name(self) -> str | None:
        return self.public_key.split(":", 1)[0] if self.public_key else None


def parse_nix_cache_key(output: list[str]) -> NixCacheKeyState:
    sections = split_sections(output, "NixCacheKey", required=("public", "secret", "cache", "done"))
    public = "".join(line.strip() for line in sections["public"]) or None
    if public is not None and (":" not in public or " " in public):
        raise ValueError(f"not a NAME:KEY public key: {public!r}")
    secret = sections["secret"][0].strip() if sections["secret"] else None
    return NixCacheKeyState(public_key=public, secret_mode=secret, cache_ready=sections["cache"] == ["yes"])


class NixCacheKey(FactBase[NixCacheKeyState]):
    """The signing key files ``secret``/``public`` and cache directory ``cache`` on the host."""

    def command(self, secret: str, public: str, cache: str) -> StringCommand:
        args = [QuoteString(x) for x in (secret, public, cache)]
        return StringCommand("sh", "-c", QuoteString(SCRIPT), "fleetforge-nix-cache", *args)

    def process(self, output: list[str]) -> NixCacheKeyState:
        return parse_or_fail("NixCacheKey", parse_nix_cache_key, output)
