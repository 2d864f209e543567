"""Benchmark peer (not used by fleetforge): the same files and sysctls as ``deploys/vps.py``,
pushed with pyinfra's stock operations, ``files.put`` (``File`` + ``Sha1File`` facts per file)
and ``server.sysctl`` (a ``Sysctl`` fact per key). No zram/udev follow-ups: it measures what
the stock operations cost to decide, not a full deploy.
"""

from io import StringIO

from pyinfra import host
from pyinfra.operations import files, server

from fleetforge.components import desired_files
from fleetforge.facts.probe import HostProbe
from fleetforge.paths import MANAGED_FILES
from fleetforge.planner import plan_host, sysctl_keys
from fleetforge.settings import settings_from_data

settings = settings_from_data(host.name, host.data.dict())
facts = host.get_fact(HostProbe, sysctl_keys=sysctl_keys(settings), files=MANAGED_FILES)
plan = plan_host(host.name, facts, settings)
for path, content in desired_files(plan, facts).items():
    files.put(name=f"stock: {path}", src=StringIO(content), dest=path)
for key, value in plan.sysctl_values().items():
    parts = [int(v) if v.isdigit() else v for v in value.split()]  # as pyinfra's Sysctl fact parses
    server.sysctl(name=f"stock: sysctl {key}", key=key, value=parts if len(parts) > 1 else parts[0], persist=True)
