"""Host data of the Nix settings component (``HostSettings`` inherits it)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator

from fleetforge.textcheck import check_text, matching

_WORD = re.compile(r"\S+")
# Deprecated names Nix still accepts for a setting (the alias lists of the ``Setting``s in Nix's
# src/libstore/globals.hh and src/libstore/filetransfer.cc; each checked against Nix 2.8.0, which
# applies it to the setting on the right). ``nix config show`` lists only the current names.
NIX_ALIASES = {
    "binary-cache-public-keys": "trusted-public-keys",
    "binary-caches": "substituters",
    "trusted-binary-caches": "trusted-substituters",
    "binary-caches-parallel-connections": "http-connections",
    "build-max-jobs": "max-jobs",
    "build-cores": "cores",
    "build-timeout": "timeout",
    "build-max-silent-time": "max-silent-time",
    "build-max-log-size": "max-build-log-size",
    "build-use-substitutes": "substitute",
    "build-fallback": "fallback",
    "build-impersonate-linux-26": "impersonate-linux-26",
    "build-keep-log": "keep-build-log",
    "build-compress-log": "compress-build-log",
    "build-use-chroot": "sandbox",
    "build-use-sandbox": "sandbox",
    "build-chroot-dirs": "sandbox-paths",
    "build-sandbox-paths": "sandbox-paths",
    "build-repeat": "repeat",
    "gc-keep-outputs": "keep-outputs",
    "gc-keep-derivations": "keep-derivations",
    "env-keep-derivations": "keep-env-derivations",
}
EXTRA = "extra-"  # nix.conf(5): ``extra-NAME`` appends to the list setting NAME


def current_name(name: str) -> str | None:
    """The current name of a deprecated setting name (``binary-caches`` -> ``substituters``,
    ``extra-binary-caches`` -> ``extra-substituters``); ``None`` when ``name`` is no alias."""
    base = name.removeprefix(EXTRA)
    current = NIX_ALIASES.get(base)
    return None if current is None else name[: len(name) - len(base)] + current


def _not_alias(name: str) -> str:
    current = current_name(name)
    if current is not None:
        raise ValueError(f"expected the current setting name {current}, got {name!r} (its deprecated alias)")
    return name


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
NixSettingName = Annotated[
    matching(r"[a-z0-9][a-z0-9-]*", "a nix.conf setting name like max-jobs"), AfterValidator(_not_alias)
]
Substituter = matching(r"(https?|file|s3|ssh|ssh-ng)://\S+", "a substituter URL like https://cache.example.org")
PublicKey = matching(r"[^\s:]+:[A-Za-z0-9+/=]+", "a public key like cache.example.org-1:base64")


class NixSettingsSettings(BaseModel):
    """``nix`` (bool), ``nix_settings``, ``nix_substituters``, ``nix_trusted_public_keys``."""

    nix: bool = True
    nix_settings: dict[NixSettingName, NixValue] = {}
    nix_substituters: list[Substituter] = []
    nix_trusted_public_keys: list[PublicKey] = []
