"""Host data of the Nix settings component (``HostSettings`` inherits it)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator

from fleetforge.textcheck import check_text, matching

_WORD = re.compile(r"\S+")


def _nix_value(value: Any) -> str | int | bool | list[str]:
    """A nix.conf value: a one-line string, a number, a boolean or a list of words.

    nix.conf(5) "File format": one ``name = value`` per line, list items separated by
    whitespace; so a string may not hold a newline (it would add a setting such as
    ``trusted-users = *`` or an ``!include``) and a list item may not hold whitespace.
    """
    if isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return check_text(value, None, "a nix.conf value on one line")
    if isinstance(value, list):
        return [check_text(item, _WORD, "list items without whitespace") for item in value]
    raise ValueError(f"expected a string, number, boolean or list of strings, got {value!r}")


NixValue = Annotated[str | int | bool | list[str], BeforeValidator(_nix_value)]
NixSettingName = matching(r"[a-z0-9][a-z0-9-]*", "a nix.conf setting name like max-jobs")
Substituter = matching(r"(https?|file|s3|ssh|ssh-ng)://\S+", "a substituter URL like https://cache.example.org")
PublicKey = matching(r"[^\s:]+:[A-Za-z0-9+/=]+", "a public key like cache.example.org-1:base64")


class NixSettingsSettings(BaseModel):
    """``nix`` (bool), ``nix_settings``, ``nix_substituters``, ``nix_trusted_public_keys``."""

    nix: bool = True
    nix_settings: dict[NixSettingName, NixValue] = {}
    nix_substituters: list[Substituter] = []
    nix_trusted_public_keys: list[PublicKey] = []
