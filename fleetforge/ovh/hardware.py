"""What OVH sells for a host (``OvhModel``) and how the detected hardware compares with it.

``OvhModel`` is the ``ovh_model`` host data that ``fleetforge.ovh.inventory`` sets: the nominal
size of the host's commercial model. ``model_mismatches`` compares it with the facts probed on the
host. Both are pure; this module imports only pydantic and ``fleetforge.facts.models`` because
the settings layer imports it.

Tolerances, and why:

- vCPUs: ``facts.cpu.logical_cpus`` must equal ``vcores``. A KVM guest sees exactly the vCPUs it
  was given; a dedicated server's ``vcores`` is its thread count (processors x threads).
- RAM: ``facts.memory.mem_total_bytes`` is ``MemTotal`` of ``/proc/meminfo``, "total usable RAM
  (i.e. physical RAM minus a few reserved bits and the kernel binary code)" (Linux,
  Documentation/filesystems/proc.rst). Firmware-reserved ranges, the kernel image, early
  allocations and a ``crashkernel=`` reservation are missing from it, so it sits below what was
  sold: the captured 1 GiB test VM reports 960 MiB (94 %), the 2 GiB one 1967 MiB (96 %). Accepted:
  85 % to 102 % of ``memory_mib`` MiB (OVH's VPS ``memory`` is in MB meaning MiB: 2048 for 2 GB).
- Disk: the largest whole disk (``facts.disks``, ``size_bytes``) against ``disk_gb``, read as GiB
  (2**30 bytes). OVH's VPS run on OpenStack ("Region OpenStack: os-gra11" is a VPS's ``zone``),
  whose libvirt driver sizes the root disk as ``flavor.root_gb * units.Gi``
  (nova/virt/libvirt/driver.py). Dedicated servers' drives are sold in decimal GB, 7 % less than
  GiB; a tolerance of +-10 % covers that, rounding in the offer and a disk extended by a few GB,
  and still catches a disk of another model size (OVH's steps are 20/40/80/160... GB).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from fleetforge.facts.models import HostFacts

MIB = 1024**2
GIB = 1024**3
RAM_MIN_RATIO = 0.85  # MemTotal at least 85 % of the RAM sold...
RAM_MAX_RATIO = 1.02  # ...and at most 102 % of it
DISK_TOLERANCE = 0.10  # largest disk within +-10 % of disk_gb GiB

#: the largest number ``OvhModel`` takes (2**31 - 1: 2 PiB of RAM in MiB, 2 EB of disk in GB): a
#: size far past any model stays a whole number that float arithmetic and the messages can handle
MAX_SIZE = 2**31 - 1
PositiveInt = Annotated[int, Field(gt=0, le=MAX_SIZE, strict=True)]


class OvhModel(BaseModel):
    """The nominal size of an OVH model (``ovh_model`` host data).

    ``name``: OVH's model name (``vps-le-2-4-80``, ``vps-2025-model1``, a dedicated server's
    commercial range); ``vcores``: vCPUs (threads); ``memory_mib``: RAM in MiB; ``disk_gb``: the
    main disk in OVH's GB (compared as GiB, see the module docstring). Frozen, extra keys refused,
    numbers strictly positive ``int``s up to ``MAX_SIZE`` (no ``bool``, no strings).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")]
    vcores: PositiveInt
    memory_mib: PositiveInt
    disk_gb: PositiveInt


def _gib(n_bytes: int) -> str:
    """``n_bytes`` in GiB with one decimal, ``.0`` dropped: ``"1.9"``, ``"4"``; a size past what a
    float holds (a host's answer) as ``"over 9.98e+291"``."""
    if abs(n_bytes) >= 2**1000:
        bound = 2**1000 // GIB
        return f"over {bound:.3g}" if n_bytes > 0 else f"under {-bound:.3g}"
    return f"{n_bytes / GIB:.1f}".removesuffix(".0")


def model_mismatches(facts: HostFacts, model: OvhModel) -> list[str]:
    """Where the detected hardware is not what OVH sells for ``model``.

    ``facts``: the host's probed facts; ``model``: its ``ovh_model``.
    Returns one line per mismatch (vCPUs, RAM, disk, in that order) naming what was detected,
    what the model sells and the model's name, e.g.
    ``RAM 1.9 GiB detected, model vps-le-2-4-80 sells 4 GiB``; ``[]`` when everything matches.
    Raises nothing.
    """
    problems = []
    cpus = facts.cpu.logical_cpus
    if cpus != model.vcores:
        problems.append(f"vCPU {cpus} detected, model {model.name} sells {model.vcores} vCores")
    ram = facts.memory.mem_total_bytes
    sold = model.memory_mib * MIB
    if not RAM_MIN_RATIO * sold <= ram <= RAM_MAX_RATIO * sold:
        accepted = f"accepted {RAM_MIN_RATIO:.0%} to {RAM_MAX_RATIO:.0%} of {model.memory_mib} MiB"
        problems.append(
            f"RAM {_gib(ram)} GiB detected, model {model.name} sells {_gib(sold)} GiB"
            f" (MemTotal {ram // MIB} MiB, {accepted})"
        )
    problems.extend(_disk_mismatch(facts, model))
    return problems


def _disk_mismatch(facts: HostFacts, model: OvhModel) -> list[str]:
    if not facts.disks:
        return [f"disk: no whole disk detected, model {model.name} sells {model.disk_gb} GB"]
    largest = max(facts.disks, key=lambda disk: disk.size_bytes)
    sold = model.disk_gb * GIB
    if abs(largest.size_bytes - sold) <= DISK_TOLERANCE * sold:
        return []
    return [
        f"disk {_gib(largest.size_bytes)} GiB detected (largest disk {largest.name}),"
        f" model {model.name} sells {model.disk_gb} GB (accepted {model.disk_gb} GiB +-{DISK_TOLERANCE:.0%})"
    ]
