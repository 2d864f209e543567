"""Where the testbed keeps its files.

Layout under the testbed directory (``$FLEETFORGE_TESTBED_DIR``, default
``~/.cache/fleetforge/testbed``)::

    images/<recipe-hash>/            one built image (see image.py), never modified once renamed in
        base.qcow2 vmlinuz initrd.img id_ed25519 id_ed25519.pub known_hosts recipe.json ...
        golden/<flavour>-<accel>-<qemu version>/disk.qcow2 state.zst info.json
    run/state.json                   the VMs of this testbed (read by inventory helpers)
    run/known_hosts                  exact ``[127.0.0.1]:PORT`` entries for every VM (paramiko)
    run/vms/<name>/                  per-VM overlay disks, QMP socket, pid file, console log
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_DIR = "FLEETFORGE_TESTBED_DIR"


def default_root() -> Path:
    """Return the testbed directory: ``$FLEETFORGE_TESTBED_DIR`` or ``~/.cache/fleetforge/testbed``."""
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env).expanduser().absolute()
    return Path("~/.cache/fleetforge/testbed").expanduser().absolute()


@dataclass(frozen=True)
class Layout:
    """Paths of one testbed directory (nothing is created by constructing this)."""

    root: Path

    @classmethod
    def at(cls, root: Path | str | None = None) -> Layout:
        """Layout for ``root`` (``None``: :func:`default_root`)."""
        return cls(Path(root).expanduser().absolute() if root is not None else default_root())

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def state_file(self) -> Path:
        return self.run / "state.json"

    @property
    def known_hosts(self) -> Path:
        return self.run / "known_hosts"

    @property
    def lock_file(self) -> Path:
        return self.run / "lock"

    def vm_dir(self, name: str) -> Path:
        return self.run / "vms" / name
