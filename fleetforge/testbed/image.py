"""Build the Debian 12 test-host image (an OVH-like VPS disk) and cache it by recipe hash.

The build uses only Debian tools and needs neither loop devices nor mounts:

1. ``mmdebstrap --variant=minbase`` (root mode) into a directory, with two hook phases of
   :data:`HOOK_SCRIPT` (``essential``: small initramfs config before the kernel is installed;
   ``customize``: SSH, network, no zram, fstab...).
2. ``mke2fs -t ext4 -d ROOTFS`` fills a root filesystem image straight from the directory,
   ``mkfs.vfat -C`` makes the ESP; both are copied sparsely into a GPT disk file laid out like
   Debian's cloud images (p14 BIOS boot EF02, p15 ESP, p1 root).
3. ``qemu-img convert`` makes the qcow2 base; the kernel and initrd are copied out for
   ``-kernel``/``-initrd`` boots.

Everything is built in ``images/.tmp-<hash>-<pid>`` and renamed to ``images/<hash>`` at the
end, so an interrupted build never leaves a half image. The hash (:meth:`Recipe.hash`) covers
the package list, the hook script, the disk layout, the kernel command line, the QEMU settings,
the flavours and :data:`CODE_VERSION`: change any of them and the image is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import qemu
from .errors import ImageBuildError
from .flavours import FLAVOURS, Flavour
from .locking import file_lock
from .mirror import SUITE, mirror_lines
from .paths import Layout
from .prereq import check_prerequisites, tool

#: Bump when the build procedure changes in a way the other recipe fields do not capture.
CODE_VERSION = 2

PACKAGES: tuple[str, ...] = (
    "linux-image-amd64",
    "systemd",
    "systemd-sysv",
    "udev",
    "dbus",
    "libpam-systemd",
    "openssh-server",
    "sudo",
    "python3",
    "btrfs-progs",
    "systemd-zram-generator",
    "nfs-kernel-server",
    "nfs-common",
    "nix-bin",
    "git",  # the NixOS stand-in's git-tracked /etc/nixos (a flake sees only files git knows)
    "nginx-light",
    "podman",  # the podman component's VM tests (storage driver on btrfs)
    "busybox-static",  # the one binary of the test container image (there is no registry here)
    "fio",  # fleetforge tune --measure (installing it at test time would cost an apt-get update)
    "parted",
    "gdisk",
    "fdisk",
    "iproute2",
    "iputils-ping",
    "netbase",
    "kmod",
    "procps",
    "util-linux",
    "e2fsprogs",
    "dosfstools",
    "ca-certificates",
    "zstd",
)

#: dpkg options: keep man pages, docs and translations out of the image.
DPKG_OPTIONS: tuple[str, ...] = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/lintian/*",
)

# Fixed identifiers, so every build of one recipe boots the same way.
ROOT_FS_UUID = "6f1c5a3e-2d4b-4c1e-9a7f-0f1ee7f0f0a1"
ROOT_PARTUUID = "6f1c5a3e-2d4b-4c1e-9a7f-0f1ee7f0f0b1"
DISK_GUID = "6f1c5a3e-2d4b-4c1e-9a7f-0f1ee7f0f0c1"
ESP_VOLUME_ID = "F0F0A1E5"
MACHINE_ID = "f1ee7f0f0a1c4e2d9a7f6f1c5a3e2d4b"
GOLDEN_HOSTNAME = "fleetforge"

DISK_SIZE_MIB = 10240
SECTOR = 512
#: (partition number, first sector, last sector or 0 = end, sgdisk type code, name)
PARTITIONS: tuple[tuple[int, int, int, str, str], ...] = (
    (14, 2048, 8191, "EF02", "bios"),
    (15, 8192, 262143, "EF00", "esp"),
    (1, 262144, 0, "8304", "root"),
)
ROOT_START_SECTOR = 262144
ESP_START_SECTOR = 8192
ESP_SIZE_KIB = (262143 - 8192 + 1) * SECTOR // 1024

KERNEL_CMDLINE = f"root=UUID={ROOT_FS_UUID} rw console=ttyS0,115200n8 net.ifnames=1 mitigations=off quiet loglevel=4"

#: Shell script run by mmdebstrap hooks: ``sh SCRIPT PHASE ROOTFS [FILES_DIR]``.
#: ``@NAME@`` placeholders are filled by :meth:`Recipe.script`.
HOOK_SCRIPT = r"""#!/bin/sh
# fleetforge testbed image hooks. $1 = phase, $2 = rootfs, $3 = dir with generated files.
set -eu
phase=$1
root=$2
files=${3:-}

if [ "$phase" = essential ]; then
    # Small initramfs: only the modules a virtio guest needs to mount its root fs
    # (30 MB -> about 7 MB, kernel boot 13.6 s -> 7.9 s under TCG). Written before the
    # kernel package is installed, so the initramfs is built once.
    mkdir -p "$root/etc/initramfs-tools/conf.d" "$root/etc/initramfs-tools/hooks"
    printf 'MODULES=list\nCOMPRESS=zstd\nRESUME=none\n' \
        > "$root/etc/initramfs-tools/conf.d/fleetforge.conf"
    cat > "$root/etc/initramfs-tools/hooks/fleetforge-virtio" <<'EOF'
#!/bin/sh
PREREQ=""
prereqs() { echo "$PREREQ"; }
case "$1" in prereqs) prereqs; exit 0 ;; esac
. /usr/share/initramfs-tools/hook-functions
for m in @INITRAMFS_MODULES@; do force_load "$m"; done
EOF
    chmod 0755 "$root/etc/initramfs-tools/hooks/fleetforge-virtio"
    exit 0
fi

[ "$phase" = customize ] || { echo "unknown phase $phase" >&2; exit 2; }

# --- a fresh VPS has no swap: drop Debian's default zram0 (systemd-zram-generator) ---
rm -f "$root/etc/systemd/zram-generator.conf" \
      "$root/usr/lib/systemd/zram-generator.conf" \
      "$root/etc/modules-load.d/20-zram-generator.conf" \
      "$root/usr/lib/modules-load.d/zram.conf"
for f in "$root"/etc/systemd/zram-generator.conf.d/*.conf \
         "$root"/usr/lib/systemd/zram-generator.conf.d/*.conf; do
    [ -e "$f" ] && rm -f "$f"
done
if grep -rls zram "$root/etc/modules-load.d" "$root/usr/lib/modules-load.d" \
        "$root/etc/modules" 2>/dev/null; then
    echo "zram is still loaded at boot by the files above" >&2; exit 1
fi

# --- identity ---
echo "@MACHINE_ID@" > "$root/etc/machine-id"
echo "@HOSTNAME@" > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\t@HOSTNAME@\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
    > "$root/etc/hosts"
printf 'UUID=@ROOT_FS_UUID@\t/\text4\tdefaults,errors=remount-ro\t0\t1\n' > "$root/etc/fstab"

# --- network: DHCP on ens3 (QEMU user networking answers DHCP and DNS at 10.0.2.3) ---
mkdir -p "$root/etc/systemd/network"
printf '[Match]\nName=ens3\n\n[Network]\nDHCP=ipv4\n' > "$root/etc/systemd/network/10-ens3.network"
rm -f "$root/etc/resolv.conf"
echo "nameserver 10.0.2.3" > "$root/etc/resolv.conf"

# --- SSH: root by key only, fixed host key generated on the controller ---
rm -f "$root"/etc/ssh/ssh_host_*
install -m 0600 "$files/ssh_host_ed25519_key" "$root/etc/ssh/ssh_host_ed25519_key"
install -m 0644 "$files/ssh_host_ed25519_key.pub" "$root/etc/ssh/ssh_host_ed25519_key.pub"
install -d -m 0700 "$root/root/.ssh"
install -m 0600 "$files/authorized_keys" "$root/root/.ssh/authorized_keys"
cat > "$root/etc/ssh/sshd_config.d/10-fleetforge.conf" <<'EOF'
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
MaxStartups 100:30:200
EOF

# --- services ---
chroot "$root" systemctl enable systemd-networkd.service ssh.service >/dev/null
# no interactive first-boot questions on the serial console
chroot "$root" systemctl mask systemd-firstboot.service >/dev/null
for u in apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer fstrim.timer \
         e2scrub_reap.service dpkg-db-backup.timer nfs-server.service rpcbind.service rpcbind.socket nginx.service \
         systemd-networkd-wait-online.service; do
    chroot "$root" systemctl disable "$u" >/dev/null 2>&1 || true
done
# keep root's systemd --user manager running: no start/stop of user@0 per SSH command
mkdir -p "$root/var/lib/systemd/linger"
touch "$root/var/lib/systemd/linger/root"

# --- checks ---
ls "$root"/boot/vmlinuz-* "$root"/boot/initrd.img-* >/dev/null
"""

INITRAMFS_MODULES: tuple[str, ...] = ("virtio_pci", "virtio_blk", "virtio_scsi", "sd_mod", "ext4")


@dataclass(frozen=True)
class Recipe:
    """Everything that decides what the image (and its golden VM states) contains.

    Two recipes with the same :meth:`hash` produce interchangeable images.
    """

    suite: str = SUITE
    variant: str = "minbase"
    packages: tuple[str, ...] = PACKAGES
    dpkg_options: tuple[str, ...] = DPKG_OPTIONS
    hook_script: str = HOOK_SCRIPT
    initramfs_modules: tuple[str, ...] = INITRAMFS_MODULES
    kernel_cmdline: str = KERNEL_CMDLINE
    disk_size_mib: int = DISK_SIZE_MIB
    partitions: tuple[tuple[int, int, int, str, str], ...] = PARTITIONS
    root_fs_uuid: str = ROOT_FS_UUID
    hostname: str = GOLDEN_HOSTNAME
    flavours: tuple[Flavour, ...] = field(default_factory=lambda: tuple(FLAVOURS.values()))
    qemu_settings: tuple[tuple[str, str], ...] = field(
        default_factory=lambda: tuple(sorted(qemu.QEMU_SETTINGS.items()))
    )
    code_version: int = CODE_VERSION

    def script(self) -> str:
        """The hook script with its placeholders filled in."""
        return (
            self.hook_script.replace("@INITRAMFS_MODULES@", " ".join(self.initramfs_modules))
            .replace("@MACHINE_ID@", MACHINE_ID)
            .replace("@HOSTNAME@", self.hostname)
            .replace("@ROOT_FS_UUID@", self.root_fs_uuid)
        )

    def as_dict(self) -> dict[str, object]:
        """Canonical plain-data form (what is hashed and stored as ``recipe.json``)."""
        return {
            "suite": self.suite,
            "variant": self.variant,
            "packages": sorted(self.packages),
            "dpkg_options": list(self.dpkg_options),
            "script": self.script(),
            "kernel_cmdline": self.kernel_cmdline,
            "disk_size_mib": self.disk_size_mib,
            "partitions": [list(p) for p in self.partitions],
            "root_fs_uuid": self.root_fs_uuid,
            "flavours": [f.as_dict() for f in sorted(self.flavours, key=lambda f: f.name)],
            "qemu_settings": dict(self.qemu_settings),
            "code_version": self.code_version,
        }

    def hash(self) -> str:
        """16 hex digits of the SHA-256 of :meth:`as_dict` (the image cache key)."""
        blob = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class Image:
    """A built image in the cache (all paths exist once :func:`ensure_image` returned it)."""

    path: Path
    recipe_hash: str

    @property
    def base_disk(self) -> Path:
        """qcow2 base disk (GPT: p1 root ext4, p14 BIOS boot, p15 ESP)."""
        return self.path / "base.qcow2"

    @property
    def kernel(self) -> Path:
        return self.path / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.path / "initrd.img"

    @property
    def ssh_key(self) -> Path:
        """Private ed25519 key that logs in as root on every VM of this image."""
        return self.path / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        """OpenSSH known_hosts with a ``[127.0.0.1]:*`` entry for the VMs' fixed host key."""
        return self.path / "known_hosts"

    @property
    def host_public_key(self) -> str:
        """``ssh-ed25519 AAAA...`` host key line of the VMs (no comment)."""
        return " ".join((self.path / "ssh_host_ed25519_key.pub").read_text().split()[:2])

    @property
    def kernel_cmdline(self) -> str:
        return json.loads((self.path / "recipe.json").read_text())["kernel_cmdline"]

    def golden_dir(self, key: str) -> Path:
        return self.path / "golden" / key

    def timings(self) -> dict[str, float]:
        """Seconds per build step, as measured when the image was built."""
        p = self.path / "timings.json"
        return json.loads(p.read_text()) if p.exists() else {}


Log = Callable[[str], None]


def _quiet(_msg: str) -> None:
    return None


def _run(cmd: Sequence[str | os.PathLike[str]], log_file: Path, **kw: Any) -> None:
    """Run ``cmd`` appending its output to ``log_file``; :class:`ImageBuildError` on failure.

    If the caller is interrupted (Ctrl-C, timeout), the child gets SIGTERM and up to 60 s to
    clean up (mmdebstrap unmounts /proc, /sys and /dev from the rootfs) before SIGKILL.
    """
    with open(log_file, "ab") as lf:
        lf.write(("\n$ " + " ".join(map(str, cmd)) + "\n").encode())
        lf.flush()
        proc = subprocess.Popen([str(c) for c in cmd], stdout=lf, stderr=subprocess.STDOUT, **kw)
        try:
            rc = proc.wait()
        except BaseException:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
    if rc != 0:
        tail = log_file.read_text(errors="replace").splitlines()[-25:]
        raise ImageBuildError(f"{Path(str(cmd[0])).name} failed (exit {rc}); log: {log_file}\n" + "\n".join(tail))


def _mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path`` (deepest first), from /proc/self/mountinfo."""
    base = os.path.realpath(path)
    found = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        fields = line.split()
        if len(fields) < 5:
            continue
        mp = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        if mp == base or mp.startswith(base + "/"):
            found.append(mp)
    return sorted(found, key=len, reverse=True)


def safe_rmtree(path: Path) -> None:
    """Delete a build directory, first unmounting what a killed mmdebstrap may have left
    mounted in it (/proc, an rbind of /sys, /dev nodes). Never descends into a mount.

    Raises:
        ImageBuildError: something stays mounted below ``path`` (nothing is deleted then).
    """
    if not path.exists():
        return
    for mp in _mounts_under(path):
        subprocess.run(["umount", "-l", mp], capture_output=True, check=False)
    left = _mounts_under(path)
    if left:
        raise ImageBuildError(f"not deleting {path}: still mounted: {', '.join(left)}")
    shutil.rmtree(path, ignore_errors=True)


def sparse_copy(src: Path, dst: Path, offset: int) -> int:
    """Copy the data extents of ``src`` into ``dst`` at byte ``offset``, skipping holes.

    ``dst`` must exist and be large enough. Returns the number of bytes copied.
    Uses ``SEEK_DATA``/``SEEK_HOLE`` and ``copy_file_range`` (no 10 GiB of zeros are written).
    """
    copied = 0
    with open(src, "rb") as fi, open(dst, "r+b") as fo:
        size = os.fstat(fi.fileno()).st_size
        pos = 0
        while pos < size:
            try:
                data = os.lseek(fi.fileno(), pos, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole is left
                break
            hole = os.lseek(fi.fileno(), data, os.SEEK_HOLE)
            n = hole - data
            src_off, dst_off = data, data + offset
            while n > 0:
                done = os.copy_file_range(fi.fileno(), fo.fileno(), min(n, 1 << 30), src_off, dst_off)
                if done <= 0:
                    raise ImageBuildError(f"copy_file_range stalled copying {src}")
                n -= done
                src_off += done
                dst_off += done
                copied += done
            pos = hole
    return copied


def image_path(layout: Layout, recipe: Recipe | None = None) -> Path:
    """Where the image of ``recipe`` lives (it may not be built yet)."""
    return layout.images / (recipe or Recipe()).hash()


def find_image(layout: Layout, recipe: Recipe | None = None) -> Image | None:
    """The cached image of ``recipe``, or ``None`` if it is not built."""
    recipe = recipe or Recipe()
    p = image_path(layout, recipe)
    if (p / "recipe.json").exists() and (p / "base.qcow2").exists():
        return Image(p, recipe.hash())
    return None


def ensure_image(layout: Layout, recipe: Recipe | None = None, *, force: bool = False, log: Log = _quiet) -> Image:
    """Return the cached image of ``recipe``, building it first if needed (1-3 min).

    Concurrent callers wait on a lock and then reuse the image built by the first one.

    Raises:
        MissingPrerequisiteError: a build tool is missing (names the Debian packages).
        MirrorNotFoundError: no Debian mirror configured (see :mod:`.mirror`).
        ImageBuildError: a build step failed (the message has the log tail).
    """
    recipe = recipe or Recipe()
    if not force and (img := find_image(layout, recipe)):
        return img
    layout.images.mkdir(parents=True, exist_ok=True)
    with file_lock(layout.images / ".lock"):
        if not force and (img := find_image(layout, recipe)):
            return img
        return build_image(layout, recipe, log=log)


def build_image(layout: Layout, recipe: Recipe, *, log: Log = _quiet) -> Image:
    """Build the image of ``recipe`` unconditionally (caller holds the images lock).

    Returns the new :class:`Image`; an older image of the same hash is replaced.
    Raises the errors listed in :func:`ensure_image`.
    """
    check_prerequisites(build=True)
    h = recipe.hash()
    final = layout.images / h
    tmp = layout.images / f".tmp-{h}-{os.getpid()}"
    safe_rmtree(tmp)
    for stale in layout.images.glob(f".tmp-{h}-*"):  # leftovers of killed builds
        pid = stale.name.rsplit("-", 1)[-1]
        if not (pid.isdigit() and Path(f"/proc/{pid}").exists()):
            safe_rmtree(stale)
    tmp.mkdir(parents=True)
    build_log = tmp / "build.log"
    timings: dict[str, float] = {}
    t_all = time.monotonic()
    try:
        files = tmp / "files"
        files.mkdir()
        rootfs = tmp / "rootfs"
        # keys: the controller's login key and the VMs' fixed host key
        keygen = tool("ssh-keygen")
        _run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", f"fleetforge-testbed-{h}",
              "-f", tmp / "id_ed25519"], build_log)  # fmt: skip
        _run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", "fleetforge-testbed-host",
              "-f", files / "ssh_host_ed25519_key"], build_log)  # fmt: skip
        shutil.copy(tmp / "id_ed25519.pub", files / "authorized_keys")
        shutil.copy(files / "ssh_host_ed25519_key.pub", tmp / "ssh_host_ed25519_key.pub")
        host_key = " ".join((files / "ssh_host_ed25519_key.pub").read_text().split()[:2])
        (tmp / "known_hosts").write_text(f"[127.0.0.1]:* {host_key}\n")
        script = tmp / "hooks.sh"
        script.write_text(recipe.script())

        # 1. mmdebstrap
        t = time.monotonic()
        mirrors = mirror_lines()
        log(f"mmdebstrap {recipe.suite} ({len(recipe.packages)} packages) from {mirrors[0]} ...")
        cmd: list[str | Path] = [
            tool("mmdebstrap"),
            "--mode=root",
            f"--variant={recipe.variant}",
            "--format=directory",
            "--arch=amd64",
            "--components=main",
            "--skip=cleanup/reproducible",
            "--include=" + ",".join(recipe.packages),
            '--aptopt=Acquire::Retries "3"',
            f'--essential-hook=sh {script} essential "$1"',
            f'--customize-hook=sh {script} customize "$1" {files}',
        ]
        cmd += [f"--dpkgopt={o}" for o in recipe.dpkg_options]
        cmd += [recipe.suite, rootfs, *mirrors]
        _run(cmd, build_log, env={**os.environ, "LC_ALL": "C.UTF-8"})
        timings["mmdebstrap_s"] = round(time.monotonic() - t, 1)

        # kernel + initrd for -kernel/-initrd boots
        kernels = sorted((rootfs / "boot").glob("vmlinuz-*"))
        initrds = sorted((rootfs / "boot").glob("initrd.img-*"))
        if not kernels or not initrds:
            raise ImageBuildError(f"no kernel/initrd in {rootfs}/boot; log: {build_log}")
        shutil.copy(kernels[-1], tmp / "vmlinuz")
        shutil.copy(initrds[-1], tmp / "initrd.img")
        (tmp / "kernel-version").write_text(kernels[-1].name.removeprefix("vmlinuz-") + "\n")
        pkgs = subprocess.run(
            ["chroot", str(rootfs), "dpkg-query", "-W", "-f", "${Package} ${Version}\n"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        (tmp / "packages.txt").write_text(pkgs)

        # 2. file systems and GPT disk, no loop devices
        t = time.monotonic()
        log("mke2fs -d, mkfs.vfat, sgdisk, sparse copy ...")
        disk = tmp / "disk.raw"
        disk_bytes = recipe.disk_size_mib * 1024 * 1024
        with open(disk, "wb") as f:
            f.truncate(disk_bytes)
        sg = tool("sgdisk")
        sgcmd: list[str | Path] = [sg, "-o", "-U", DISK_GUID]
        for num, first, last, code, name in recipe.partitions:
            sgcmd += ["-n", f"{num}:{first}:{last}", "-t", f"{num}:{code}", "-c", f"{num}:{name}"]
        sgcmd += ["-u", f"1:{ROOT_PARTUUID}", "-A", "15:set:0", disk]
        _run(sgcmd, build_log)
        # root partition ends where sgdisk put it (aligned, before the backup GPT)
        info = subprocess.run([sg, "-i", "1", str(disk)], capture_output=True, text=True).stdout
        last = next(int(line.split(":")[1].split()[0]) for line in info.splitlines() if line.startswith("Last sector"))
        root_bytes = (last - ROOT_START_SECTOR + 1) * SECTOR
        root_img = tmp / "root.ext4"
        with open(root_img, "wb") as f:
            f.truncate(root_bytes)
        _run([tool("mke2fs"), "-q", "-F", "-t", "ext4", "-U", recipe.root_fs_uuid, "-L", "root",
              "-E", "root_owner=0:0", "-d", rootfs, root_img], build_log)  # fmt: skip
        esp_img = tmp / "esp.vfat"
        _run([tool("mkfs.vfat"), "-n", "EFI", "-i", ESP_VOLUME_ID, "-C", esp_img,
              str(ESP_SIZE_KIB)], build_log)  # fmt: skip
        sparse_copy(esp_img, disk, ESP_START_SECTOR * SECTOR)
        sparse_copy(root_img, disk, ROOT_START_SECTOR * SECTOR)
        root_img.unlink()
        esp_img.unlink()
        timings["disk_s"] = round(time.monotonic() - t, 1)

        t = time.monotonic()
        _run([tool("qemu-img"), "convert", "-f", "raw", "-O", "qcow2", disk,
              tmp / "base.qcow2"], build_log)  # fmt: skip
        disk.unlink()
        timings["qcow2_s"] = round(time.monotonic() - t, 1)
        safe_rmtree(rootfs)
        shutil.rmtree(files)
        timings["total_s"] = round(time.monotonic() - t_all, 1)
        (tmp / "timings.json").write_text(json.dumps(timings, indent=1) + "\n")
        (tmp / "recipe.json").write_text(json.dumps(recipe.as_dict(), indent=1) + "\n")
        # atomic publish
        if final.exists():
            old = layout.images / f".old-{h}-{os.getpid()}"
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    except BaseException:
        keep = layout.images / f"failed-{h}.log"
        if build_log.exists():
            shutil.copy(build_log, keep)
        safe_rmtree(tmp)
        raise
    log(f"image {h} built in {timings['total_s']} s: {final}")
    return Image(final, h)


def clean_images(layout: Layout, keep: Iterable[str] = ()) -> list[Path]:
    """Delete cached images whose recipe hash is not in ``keep``; builds in progress
    (``.tmp-*``) are left alone. Returns the deleted paths."""
    keep = set(keep)
    removed = []
    if layout.images.is_dir():
        for p in layout.images.iterdir():
            if p.is_dir() and not p.name.startswith(".") and p.name not in keep:
                safe_rmtree(p)
                removed.append(p)
    return removed
