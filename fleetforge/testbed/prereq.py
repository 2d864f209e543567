"""Check that the controller has the programs the testbed needs, and name the Debian packages."""

from __future__ import annotations

import shutil
from pathlib import Path

from .errors import MissingPrerequisiteError

#: program (or file) -> Debian package that provides it, for running VMs.
RUN_REQUIREMENTS: dict[str, str] = {
    "qemu-system-x86_64": "qemu-system-x86",
    "qemu-img": "qemu-utils",
    "zstd": "zstd",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
}

#: program (or file) -> Debian package, additionally needed to build the image.
BUILD_REQUIREMENTS: dict[str, str] = {
    "mmdebstrap": "mmdebstrap",
    "/usr/share/keyrings/debian-archive-keyring.gpg": "debian-archive-keyring",
    "mke2fs": "e2fsprogs",
    "mkfs.vfat": "dosfstools",
    "sgdisk": "gdisk",
    "qemu-img": "qemu-utils",
    "ssh-keygen": "openssh-client",
}

#: Every Debian package the testbed needs on a fresh Debian 12 controller.
APT_PACKAGES: tuple[str, ...] = tuple(sorted(set(RUN_REQUIREMENTS.values()) | set(BUILD_REQUIREMENTS.values())))

_SBIN = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")


def find_program(name: str) -> str | None:
    """Return the absolute path of ``name`` (also searching sbin dirs, absent from some PATHs)."""
    if name.startswith("/"):
        return name if Path(name).exists() else None
    found = shutil.which(name)
    if found:
        return found
    for d in _SBIN:
        p = Path(d) / name
        if p.is_file() and p.stat().st_mode & 0o111:
            return str(p)
    return None


def missing_packages(build: bool = True) -> list[str]:
    """Return the sorted Debian packages whose programs are missing (empty list: all present).

    ``build=False`` checks only what running already-built VMs needs.
    """
    reqs = dict(RUN_REQUIREMENTS)
    if build:
        reqs.update(BUILD_REQUIREMENTS)
    return sorted({pkg for prog, pkg in reqs.items() if find_program(prog) is None})


def check_prerequisites(build: bool = True) -> None:
    """Raise :class:`MissingPrerequisiteError` naming the ``apt-get install`` line if anything is missing."""
    missing = missing_packages(build)
    if missing:
        progs = sorted(
            prog
            for prog, pkg in {**RUN_REQUIREMENTS, **(BUILD_REQUIREMENTS if build else {})}.items()
            if pkg in missing
        )
        raise MissingPrerequisiteError(
            "the fleetforge testbed needs programs that are not installed: "
            + ", ".join(progs)
            + "\ninstall them with:  apt-get install -y --no-install-recommends "
            + " ".join(missing)
            + "\n(full list for a fresh Debian 12 controller: "
            + " ".join(APT_PACKAGES)
            + ")"
        )


def tool(name: str) -> str:
    """Absolute path of a required program, or :class:`MissingPrerequisiteError`."""
    path = find_program(name)
    if path is None:
        pkg = {**RUN_REQUIREMENTS, **BUILD_REQUIREMENTS}.get(name, name)
        raise MissingPrerequisiteError(f"{name} not found: apt-get install -y --no-install-recommends {pkg}")
    return path
