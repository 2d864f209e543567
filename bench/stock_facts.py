"""Benchmark peer (not used by fleetforge): what ``HostProbe`` reads for a deploy, gathered the
stock pyinfra way, with pyinfra's own facts, one command (one SSH round trip) each, in turn:

- ``server.KernelVersion``, ``server.Hostname``, ``server.LinuxDistribution`` (os-release);
- ``hardware.Cpus``, ``hardware.Memory``, ``hardware.BlockDevices``;
- ``server.Sysctl`` for the sysctl keys the default plan reads (``SYSCTL_KEYS``);
- ``files.FileContents`` for each file a deploy manages (``fleetforge.paths.MANAGED_FILES``).

Nothing is planned or changed. Run it as a user would, over pyinfra's ``@ssh``::

    pyinfra -y --dry inventory.py bench/stock_facts.py

``SYSCTL_KEYS`` is written out rather than computed (``fleetforge.planner.sysctl_keys`` would
import fleetforge's models, which a stock deploy does not load); ``bench/connector_bench.py``
checks that it still equals ``sysctl_keys(HostSettings())`` before it measures.
"""

from pyinfra import host
from pyinfra.facts import files, hardware, server

from fleetforge.paths import MANAGED_FILES

SYSCTL_KEYS = (
    "net.core.rmem_max",
    "net.core.wmem_max",
    "net.ipv4.tcp_fastopen",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "net.netfilter.nf_conntrack_max",
    "vm.dirty_background_ratio",
    "vm.dirty_ratio",
    "vm.page-cluster",
    "vm.swappiness",
    "vm.vfs_cache_pressure",
    "vm.watermark_boost_factor",
    "vm.watermark_scale_factor",
)

host.get_fact(server.KernelVersion)
host.get_fact(server.Hostname)
host.get_fact(server.LinuxDistribution)
host.get_fact(hardware.Cpus)
host.get_fact(hardware.Memory)
host.get_fact(hardware.BlockDevices)
host.get_fact(server.Sysctl, keys=list(SYSCTL_KEYS))
for path in MANAGED_FILES:
    host.get_fact(files.FileContents, path=path)
