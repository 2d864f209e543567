"""``HostProbe``: every fact one fleetforge deploy needs, in one SSH round trip.

pyinfra 3.10 runs one command per ``host.get_fact`` and caches nothing, so a deploy built from
many small facts pays one round trip each (pyinfra issues #17, #805). This fact runs one POSIX
``sh`` script that prints tagged sections (``@@lsblk``, ``@@queue``, ...) and parses them in a
pure ``process()`` into a ``fleetforge.models.HostFacts``.

Any parse problem raises ``FactProcessError`` so that only the host with the odd output fails.
Host output is untrusted (``fleetforge.facts.sections``): no text of the parsed fact holds a control
character, and the values that land in udev rules, ``/sys`` paths, disko.nix and commands match
a whole-value pattern (kernel names, ``/dev`` nodes, scheduler and algorithm names); by-id links
of other characters are not used. Refusals name the field and the value as ``repr``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable

from pyinfra.api import FactBase, QuoteString, StringCommand
from pyinfra.api.exceptions import FactProcessError

from fleetforge.facts.disks import parse_disks, parse_scheduler
from fleetforge.facts.models import (
    Cpu,
    HostFacts,
    Memory,
    NixInfo,
    OsRelease,
    SwapDevice,
    ZramDevice,
)
from fleetforge.facts.sections import (
    SYSCTL_KEY,
    WORD,
    host_value,
    kernel_name,
    parse_files,
    parse_or_fail,
    refuse_control,
    split_sections,
    sysctl_path,
)
from fleetforge.facts.storage import DEFAULT_GRAPHROOT, parse_btrfs, parse_nix_setting_names, parse_podman

LSBLK_COLUMNS = "NAME,KNAME,PATH,TYPE,SIZE,ROTA,TRAN,MODEL,SERIAL,FSTYPE,MOUNTPOINT,PKNAME"
PACKAGE_MANAGERS = ("apt-get", "dnf", "yum", "zypper", "pacman", "apk")
ZRAM_GENERATOR_PATHS = (
    "/usr/lib/systemd/system-generators/zram-generator",
    "/lib/systemd/system-generators/zram-generator",
)
REQUIRED_SECTIONS = ("lsblk", "queue", "cpu", "meminfo", "os-release", "done")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"  # RFC 1123 host name label
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*")
_BLANKS = re.compile(r"[ \t]+")  # what the kernel separates sysctl fields with (tcp_rmem)
_NIXOS_RELEASE = re.compile(r"(\d{2}\.\d{2})(?:[.\s]|pre|$)")  # "26.05pre...": unstable, the coming release
# Devices that are never tuned as disks.

_SCRIPT = r"""
export LC_ALL=C
echo @@kernel; uname -r
echo @@hostname; uname -n
echo @@lsblk; lsblk -J -b -o {columns} 2>/dev/null
echo @@queue
# ffcount GLOB...: n = how many of the expanded names exist (no subshell: forks are slow on small VMs)
ffcount() {{ n=0; for _f in "$@"; do [ -e "$_f" ] && n=$((n+1)); done; return 0; }}
for d in /sys/block/*; do
  [ -e "$d/queue/scheduler" ] || continue
  q="$d/queue"; ffcount "$d"/mq/*; nr=
  read -r sch < "$q/scheduler"; read -r rot < "$q/rotational"; read -r ra < "$q/read_ahead_kb"
  [ -r "$q/nr_requests" ] && read -r nr < "$q/nr_requests"
  printf '%s|%s|%s|%s|%s|%s|%s\n' "${{d##*/}}" "$(readlink -f "$d")" "$sch" "$rot" "$ra" "$nr" "$n"
done
echo @@btrfs
for f in /sys/fs/btrfs/*/bdi; do
  [ -e "$f/read_ahead_kb" ] || continue
  u=${{f%/bdi}}; r=$(readlink -f "$f")
  printf '%s|%s|%s|' "${{u##*/}}" "${{r##*/}}" "$(cat "$f/read_ahead_kb")"
  for v in "$u"/devices/*; do [ -e "$v" ] && printf '%s ' "${{v##*/}}"; done; echo
done
echo @@byid
for l in /dev/disk/by-id/*; do [ -L "$l" ] && printf '%s|%s\n' "$l" "$(readlink -f "$l")"; done
echo @@cpu
nproc 2>/dev/null || getconf _NPROCESSORS_ONLN
grep -m1 '^model name' /proc/cpuinfo || echo 'model name : unknown'
grep -c -m1 -w hypervisor /proc/cpuinfo
echo @@meminfo; grep -E '^(MemTotal|SwapTotal):' /proc/meminfo
echo @@swaps; cat /proc/swaps
echo @@virt
v=$(systemd-detect-virt 2>/dev/null)
if [ -n "$v" ]; then echo "$v"; else
  echo "dmi|$(cat /sys/class/dmi/id/sys_vendor 2>/dev/null)|$(cat /sys/class/dmi/id/product_name 2>/dev/null)"
fi
echo @@firmware; if [ -d /sys/firmware/efi ]; then echo efi; else echo bios; fi
echo @@os-release; cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release
echo @@nixos-version; command -v nixos-version >/dev/null 2>&1 && nixos-version
echo @@sysctl
# pairs KEY PATH (probe_argv): one cat per key (the builtin read sees 1 byte of a /proc/sys
# file), the parser normalises blanks
while [ $# -gt 1 ] && [ "$1" != --files ]; do
  [ -r "$2" ] && printf '%s=%s\n' "$1" "$(cat "$2")"
  shift 2
done
echo @@zram
for z in /sys/block/zram*; do
  [ -e "$z/disksize" ] || continue
  printf '%s|%s|%s\n' "${{z##*/}}" "$(cat "$z/disksize")" "$(cat "$z/comp_algorithm" 2>/dev/null)"
done
echo @@tools
for t in {package_managers}; do command -v "$t" >/dev/null 2>&1 && echo "pm $t"; done
for g in {zram_generators}; do [ -e "$g" ] && echo zram-generator && break; done
command -v nix >/dev/null 2>&1 && echo "nix $(nix --version 2>/dev/null | head -n1)"
[ -f /etc/nix/nix.conf ] && echo nix-conf
systemctl cat nix-daemon.service >/dev/null 2>&1 && echo nix-daemon-unit
echo @@nix-settings
if command -v nix >/dev/null 2>&1; then
  # names only (values such as access-tokens stay on the host); show-config first: "config show"
  # needs Nix >= 2.20, where show-config is a deprecated alias
  {{ nix --extra-experimental-features nix-command show-config 2>/dev/null ||
    nix --extra-experimental-features nix-command config show 2>/dev/null; }} |
    while read -r k eq _; do [ "$eq" = "=" ] && echo "$k"; done
fi
echo @@podman
if command -v podman >/dev/null 2>&1; then
  echo "version $(podman --version 2>/dev/null)"
  g=
  for c in /etc/containers/storage.conf /usr/share/containers/storage.conf; do
    [ -f "$c" ] || continue
    echo "conf $c"
    # the [storage] table's key = "value" lines (containers-storage.conf(5)), checked again in Python
    s=$(sed -n '/^[[:space:]]*\[storage\][[:space:]]*$/,/^[[:space:]]*\[/{{
      s/^[[:space:]]*\([a-z_]*\)[[:space:]]*=[[:space:]]*["'"'"']\([^"'"'"']*\)["'"'"'].*/set \1 \2/p
    }}' "$c")
    printf '%s\n' "$s"
    set -f; IFS='
'
    for l in $s; do case $l in "set graphroot "*) [ -z "$g" ] && g=${{l#set graphroot }};; esac; done
    unset IFS; set +f
    break
  done
  g=${{g:-{default_graphroot}}}
  p=$g; case $p in /*) ;; *) p=/ ;; esac  # a relative graphroot is refused by the parser
  while [ ! -e "$p" ]; do p=${{p%/*}}; p=${{p:-/}}; done
  echo "fstype $(findmnt -n -o FSTYPE -T "$p" 2>/dev/null)"
  for x in "$g"/*-images "$g"/*-containers; do
    [ -d "$x" ] && ffcount "$x"/{image_id}/ && echo "store ${{x##*/}} $n"
  done
fi
echo @@files
listed=
for f in "$@"; do
  if [ -z "$listed" ]; then [ "$f" = --files ] && listed=1; continue; fi
  if [ -f "$f" ]; then
    echo "file $f $(sha256sum < "$f" | cut -d' ' -f1)"; base64 < "$f"; echo @@end-file
  else echo "absent $f"; fi
done
echo @@done
"""

SCRIPT = _SCRIPT.format(
    columns=LSBLK_COLUMNS,
    package_managers=" ".join(PACKAGE_MANAGERS),
    zram_generators=" ".join(shlex.quote(p) for p in ZRAM_GENERATOR_PATHS),
    image_id="[0-9a-f]" * 64,
    default_graphroot=DEFAULT_GRAPHROOT,  # containers-storage names image and container directories by ID
)


def probe_argv(sysctl_keys: Iterable[str], files: Iterable[str]) -> list[str]:
    """``SCRIPT``'s arguments after ``$0``: each sysctl key followed by its ``/proc/sys`` path
    (built here so the script needs no ``tr`` per key: every process costs on a small VM),
    ``--files``, the absolute paths of the files whose content to read (``HostFacts.files``
    holds exactly these)."""
    pairs = [part for key in sysctl_keys for part in (key, sysctl_path(key))]
    return [*pairs, "--files", *files]


class HostProbe(FactBase[HostFacts]):
    """Disks, CPU, memory, virtualization, firmware, OS and managed state of a host.

    Arguments: ``sysctl_keys``, the sysctl keys whose live values to read (those absent on the
    host, e.g. ``net.netfilter.nf_conntrack_max`` without nf_conntrack, are left out of
    ``HostFacts.sysctl``); ``files``, the absolute paths whose content and SHA-256 to read
    (``fleetforge.paths.MANAGED_FILES`` for a deploy; absent files are ``None``). The fact is
    a leaf: what it reads is passed to it.

    Returns a ``fleetforge.facts.models.HostFacts``. Raises ``FactProcessError`` (this host only)
    when the output is incomplete or malformed.
    """

    def command(self, sysctl_keys: Iterable[str], files: Iterable[str]) -> StringCommand:
        return StringCommand(
            "sh",
            "-c",
            QuoteString(SCRIPT),
            "fleetforge-probe",
            *[QuoteString(arg) for arg in probe_argv(sysctl_keys, files)],
        )

    def process(self, output: list[str]) -> HostFacts:
        return parse_or_fail("HostProbe", parse_probe, output)


def parse_probe(output: list[str]) -> HostFacts:
    """Pure parser: probe stdout lines -> ``HostFacts``. Raises ``FactProcessError`` naming the
    field and value of anything malformed or unsafe (see the module docstring)."""
    s = split_sections(output, "HostProbe", REQUIRED_SECTIONS, markers=("@@end-file",))
    swaps = parse_swaps(s.get("swaps", []))
    tools = {line.strip() for line in s.get("tools", [])}
    nix_line = next((t for t in tools if t.startswith("nix ")), None)
    managers = sorted(t[3:] for t in tools if t.startswith("pm "))
    if set(managers) - set(PACKAGE_MANAGERS):
        raise FactProcessError(f"HostProbe: package manager: expected one of {PACKAGE_MANAGERS}, got {managers!r}")
    facts = HostFacts(
        kernel_release=_first(s.get("kernel", []), "kernel"),
        disks=parse_disks(s["lsblk"], s["queue"], s.get("byid", [])),
        cpu=parse_cpu(s["cpu"]),
        memory=Memory(mem_total_bytes=parse_meminfo(s["meminfo"])["MemTotal"], swap_devices=swaps),
        virtualization=parse_virt(s.get("virt", [])),
        firmware="efi" if _first(s.get("firmware", ["bios"]), "firmware") == "efi" else "bios",
        os=parse_os_release(s["os-release"], s.get("hostname", []), s.get("nixos-version", [])),
        sysctl={
            host_value("HostProbe", "sysctl key", key, SYSCTL_KEY, "a sysctl key like vm.swappiness"): _BLANKS.sub(
                " ", value
            ).strip(" ")
            for key, _, value in (line.partition("=") for line in s.get("sysctl", []) if "=" in line)
        },
        zram=parse_zram(s.get("zram", []), swaps),
        zram_generator="zram-generator" in tools,
        package_manager=managers[0] if managers else None,
        nix=NixInfo(
            installed=nix_line is not None,
            version=_nix_version(nix_line),
            conf_present="nix-conf" in tools,
            daemon_unit="nix-daemon-unit" in tools,
            setting_names=parse_nix_setting_names(s.get("nix-settings", [])),
        ),
        files=parse_files(s.get("files", []), "HostProbe"),
        btrfs=parse_btrfs(s.get("btrfs", [])),
        podman=parse_podman(s.get("podman", [])),
    )
    # Every text value, except the managed files' own content (it goes back to the same host).
    refuse_control("HostProbe", facts.model_dump(exclude={"files"}))
    return facts


def _first(lines: list[str], what: str) -> str:
    for line in lines:
        if line.strip():
            return line.strip()
    raise FactProcessError(f"HostProbe: empty {what} section")


def _nix_version(line: str | None) -> str | None:
    if not line:
        return None
    match = re.search(r"(\d+\.\d+(?:\.\d+)?)", line)
    return match.group(1) if match else None


def parse_cpu(lines: list[str]) -> Cpu:
    if len(lines) < 3:
        raise FactProcessError("HostProbe: cpu section needs 3 lines")
    return Cpu(
        logical_cpus=int(lines[0]),
        model_name=lines[1].split(":", 1)[1].strip(),
        hypervisor_flag=lines[2].strip() != "0",
    )


def parse_meminfo(lines: list[str]) -> dict[str, int]:
    """``MemTotal: 1010712 kB`` lines -> ``{"MemTotal": 1034969088}`` (bytes)."""
    values = {}
    for line in lines:
        key, _, rest = line.partition(":")
        number, *unit = rest.split()
        values[key.strip()] = int(number) * (1024 if unit == ["kB"] else 1)
    if "MemTotal" not in values:
        raise FactProcessError("HostProbe: no MemTotal in /proc/meminfo")
    return values


def parse_swaps(lines: list[str]) -> list[SwapDevice]:
    """``/proc/swaps`` (sizes in KiB) -> swap devices with sizes in bytes."""
    devices = []
    for line in lines[1:]:
        fields = line.split()
        if not fields:
            continue
        path, kind, size_kib, used_kib, priority = fields[:5]
        devices.append(
            SwapDevice(
                path=path,
                kind=kind,
                size_bytes=int(size_kib) * 1024,
                used_bytes=int(used_kib) * 1024,
                priority=int(priority),
            )
        )
    return devices


_DMI_VIRT = (("qemu", "qemu"), ("kvm", "kvm"), ("vmware", "vmware"), ("xen", "xen"))


def parse_virt(lines: list[str]) -> str:
    """``systemd-detect-virt`` output, or the DMI fallback line ``dmi|vendor|product``."""
    line = _first(lines or ["none"], "virt")
    if not line.startswith("dmi|"):
        return host_value("HostProbe", "virtualization", line, WORD, "a systemd-detect-virt id like kvm")
    text = line.lower()
    if "microsoft" in text:
        return "microsoft"
    return next((virt for needle, virt in _DMI_VIRT if needle in text), "none")


def parse_os_release(lines: list[str], hostname: list[str] = (), nixos_version: list[str] = ()) -> OsRelease:
    """``/etc/os-release`` (os-release(5)) plus ``uname -n`` and ``nixos-version`` output.

    ``hostname`` is kept only when it is a host name (RFC 1123 labels), else ``None``: the kernel
    accepts any bytes there. ``nixos_release`` is the ``YY.MM`` that ``nixos-version`` starts
    with (``24.05.20240601.abcdef0 (Uakari)``), ``None`` on other systems or other output.
    """
    values = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = shlex.split(value)[0] if value.strip() else ""
    if "ID" not in values:
        raise FactProcessError("HostProbe: os-release has no ID")
    name = next((line.strip() for line in hostname if line.strip()), "")
    version = next((line.strip() for line in nixos_version if line.strip()), "")
    release = _NIXOS_RELEASE.match(version)
    return OsRelease(
        id=values["ID"],
        id_like=values.get("ID_LIKE", "").split(),
        version_id=values.get("VERSION_ID"),
        pretty_name=values.get("PRETTY_NAME"),
        hostname=name if _HOSTNAME.fullmatch(name) else None,
        nixos_release=release.group(1) if release else None,
    )


def parse_zram(lines: list[str], swaps: list[SwapDevice]) -> list[ZramDevice]:
    active = {swap.path for swap in swaps}
    devices = []
    for line in lines:
        name, disksize, algorithms = line.split("|")
        kernel_name("HostProbe", "zram device", name)
        current, _ = parse_scheduler(algorithms)  # same "[selected]" notation
        if current is not None:
            host_value("HostProbe", f"comp_algorithm of {name}", current, WORD, "an algorithm name like lz4")
        devices.append(
            ZramDevice(
                name=name,
                disksize_bytes=int(disksize),
                algorithm=current,
                swap_active=f"/dev/{name}" in active,
            )
        )
    return devices
