"""Shared parsing for fleetforge's facts: one command prints ``@@name`` sections, and every value
the host printed is checked before it can reach a file, a command or another host.

A fact's ``process()`` should turn any parse problem into ``FactProcessError`` so pyinfra fails
that host only (any other exception would abort the whole run): ``parse_or_fail`` does that.

Host output is untrusted (a compromised host or hypervisor can print anything in lsblk, sysfs,
os-release or a file name). Two rules, one mechanism each:

- ``refuse_control``: no text value of a parsed fact holds a control character (newline, CR,
  tab, ESC, NUL, DEL, C1), so none can add a line to whatever file or message it lands in.
- ``host_value``: values that land in a syntax (a udev match, a ``/sys`` path, a shell word)
  must match a whole-value pattern (``KERNEL_NAME``, ``DEV_NODE``, ``WORD``...), else the
  host fails with a ``FactProcessError`` naming the field and the value as ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pydantic import ValidationError
from pyinfra.api.exceptions import FactProcessError

from fleetforge.facts.models import ManagedFile

T = TypeVar("T")

# Kernel block device names (/sys/block/NAME) as drivers build them: a lowercase letter, then
# letters and digits, with single "-", "_" or "." between runs: sda, vdaa, xvda, nvme0n1,
# nvme0c0n1, mmcblk0, mmcblk0boot0, loop7, dm-0, md127, md_d0, pmem0.1, zd16, zram0.
# DISK_NAME_LEN is 32 with the NUL (include/linux/blkdev.h). Refused: "/" (and the "!" that
# sysfs writes for it: cciss!c0d0), quotes, whitespace, glob characters, "..".
KERNEL_NAME = re.compile(r"[a-z][a-z0-9]*(?:[-_.][a-z0-9]+)*")
KERNEL_NAME_MAX = 31
# Device nodes: /dev/NAME or /dev/mapper/NAME, NAME of the characters udev and device-mapper
# keep in names ("0-9A-Za-z#+-.:=@_", udev's udev_replace_chars, libdevmapper's mangling).
_NODE_NAME = r"[A-Za-z0-9#+:=@_][A-Za-z0-9#+.:=@_-]*"
NODE_NAME = re.compile(_NODE_NAME)
DEV_NODE = re.compile(rf"/dev/(?:mapper/)?{_NODE_NAME}")
BY_ID_LINK = re.compile(rf"/dev/disk/by-id/{_NODE_NAME}")
# Lowercase identifiers: I/O schedulers, zram algorithms, systemd-detect-virt ids.
WORD = re.compile(r"[a-z0-9][a-z0-9_-]*")
SHA256 = re.compile(r"[0-9a-f]{64}")
# sysctl keys as sysctl(8) names them (never starting with "-", so never an option).
SYSCTL_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/@-]*")


def sysctl_path(key: str) -> str:
    """The file of sysctl ``key`` under /proc/sys, every ``.`` a directory level
    (``vm.swappiness`` -> ``/proc/sys/vm/swappiness``); a key holds no ``..`` path step this way."""
    return "/proc/sys/" + key.replace(".", "/")


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def has_control(value: str) -> bool:
    """True if ``value`` holds a control character (newline, tab, NUL, ESC, DEL, C1...)."""
    return _CONTROL.search(value) is not None


def host_value(fact: str, field: str, value: Any, pattern: re.Pattern[str] | None, expected: str) -> str:
    """``value`` if it is a ``str`` without control characters that ``pattern`` matches whole
    (``None``: any such text). Raises ``FactProcessError("<fact>: <field>: expected <expected>,
    got <repr>")`` otherwise."""
    if not isinstance(value, str) or has_control(value) or (pattern is not None and not pattern.fullmatch(value)):
        raise FactProcessError(f"{fact}: {field}: expected {expected}, got {value!r}")
    return value


def kernel_name(fact: str, field: str, value: Any) -> str:
    """``value`` if it is a kernel block device name (``KERNEL_NAME``, at most 31 characters);
    raises ``FactProcessError`` naming ``field`` otherwise."""
    expected = "a kernel block device name like sda, vda, nvme0n1, mmcblk0 or dm-0"
    host_value(fact, field, value, KERNEL_NAME, expected)
    if len(value) > KERNEL_NAME_MAX:
        raise FactProcessError(f"{fact}: {field}: expected {expected} (at most 31 characters), got {value!r}")
    return value


def is_kernel_name(value: Any) -> bool:
    """True if ``value`` is a kernel block device name (see ``KERNEL_NAME``)."""
    return isinstance(value, str) and len(value) <= KERNEL_NAME_MAX and KERNEL_NAME.fullmatch(value) is not None


def refuse_control(fact: str, data: Any, field: str = "") -> None:
    """Raise ``FactProcessError`` naming the field (``disks[1].serial``) of the first string in
    ``data`` (dicts, lists and strings, keys included) that holds a control character."""
    if isinstance(data, str):
        host_value(fact, field or "value", data, None, "text without control characters")
    elif isinstance(data, dict):
        for key, item in data.items():
            refuse_control(fact, key, f"{field} key" if field else "key")
            refuse_control(fact, item, f"{field}.{key}" if field else str(key))
    elif isinstance(data, list | tuple):
        for i, item in enumerate(data):
            refuse_control(fact, item, f"{field}[{i}]")


def split_sections(
    output: list[str], fact: str, required: Iterable[str], markers: Iterable[str] = ()
) -> dict[str, list[str]]:
    """``{section: lines}`` of output whose sections start with ``@@name`` lines.

    ``markers``: ``@@`` lines that are content, not section headers (e.g. ``@@end-file``).
    Raises ``FactProcessError`` naming ``fact`` when a ``required`` section is missing
    (``done``, printed last, tells truncated output).
    """
    skip = set(markers)
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output:
        if line.startswith("@@") and line not in skip:
            current = sections.setdefault(line[2:].strip(), [])
        elif current is not None:
            current.append(line)
    missing = [name for name in required if name not in sections]
    if missing:
        raise FactProcessError(f"{fact}: output is missing sections {missing}")
    return sections


def parse_or_fail(fact: str, parse: Callable[[list[str]], T], output: list[str]) -> T:
    """``parse(output)``, with any parse error raised as ``FactProcessError`` naming ``fact``."""
    try:
        return parse(output)
    except FactProcessError:
        raise
    except (ValueError, KeyError, IndexError, TypeError, ValidationError) as exc:
        raise FactProcessError(f"{fact}: cannot parse output: {exc}") from exc


def parse_files(lines: list[str], fact: str = "FileContents") -> dict[str, ManagedFile | None]:
    """``file PATH SHA`` + base64 body + ``@@end-file``, or ``absent PATH`` -> ``{PATH: file}``.

    The content is the host's own file, kept as text (it goes back to the same host); ``PATH``
    must be one line and ``SHA`` a sha256. Raises ``FactProcessError`` otherwise.
    """
    files: dict[str, ManagedFile | None] = {}
    i = 0
    while i < len(lines):
        kind, _, rest = lines[i].partition(" ")
        if kind == "absent":
            files[host_value(fact, "file path", rest, None, "a path")] = None
        elif kind == "file":
            path, _, sha = rest.rpartition(" ")
            host_value(fact, "file path", path, None, "a path")
            host_value(fact, f"sha256 of {path}", sha, SHA256, "64 hex digits")
            body = []
            i += 1
            while i < len(lines) and lines[i] != "@@end-file":
                body.append(lines[i])
                i += 1
            try:
                content = base64.b64decode("".join(body), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise FactProcessError(f"{fact}: bad content for {path}: {exc}") from exc
            files[path] = ManagedFile(sha256=sha, content=content)
        elif lines[i].strip():
            raise FactProcessError(f"{fact}: bad files line {lines[i]!r}")
        i += 1
    return files
