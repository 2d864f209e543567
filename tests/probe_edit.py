"""Captured probe outputs (``tests/facts/probe.HostProbe``) edited the way a host would change
them: a managed file's content, an os-release field. Used to feed hostile host output through
the real fact parser and the real commands with pyinfra's ``@fake`` connector."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from tests.conftest import load_fixture


def with_file(output: list[str], path: str, content: str | None) -> list[str]:
    """``output`` with the probe's ``@@files`` entry for ``path`` replaced (``None``: absent)."""
    lines, i = [], 0
    while i < len(output):
        line = output[i]
        if line == f"absent {path}" or line.startswith(f"file {path} "):
            if line.startswith("file "):
                while output[i] != "@@end-file":
                    i += 1
            i += 1
            continue
        if line == "@@done":
            lines += entry(path, content)
        lines.append(line)
        i += 1
    return lines


def entry(path: str, content: str | None) -> list[str]:
    """The probe's lines for one file: ``file PATH SHA`` + base64 + ``@@end-file``, or absent."""
    if content is None:
        return [f"absent {path}"]
    data = content.encode()
    body = base64.encodebytes(data).decode().splitlines()
    return [f"file {path} {hashlib.sha256(data).hexdigest()}", *body, "@@end-file"]


def with_os_release(output: list[str], key: str, value: str) -> list[str]:
    """``output`` with the os-release line ``KEY=...`` replaced by ``KEY="value"``."""
    return [f'{key}="{value}"' if line.startswith(f"{key}=") else line for line in output]


def fake_inventory(path: Path, hosts: dict[str, tuple[list[str], dict]]) -> Path:
    """Write a pyinfra inventory of ``@fake`` hosts replaying ``{name: (probe output, data)}``."""
    entries = []
    for name, (output, data) in hosts.items():
        full = {"fake_delay": 0, "fake_delay_jitter": 0, "fake_responses": {"fleetforge-probe": output}, **data}
        entries.append(f"    ({name!r}, {full!r}),")
    path.write_text("fleet = [\n" + "\n".join(entries) + "\n]\n")
    return path


def fixture_output(name: str) -> list[str]:
    """A captured probe output (the ``output`` lines of ``tests/facts/probe.HostProbe/NAME.json``)."""
    return list(load_fixture(name)["output"])
