"""Push the offline ISO bundle (``fleetforge bundle fetch MANIFEST`` first) to every host:

    pyinfra inventory.py deploys/iso_bundle.py [--dry]

Host data: ``iso_dir`` (default ``/var/lib/hypervisor/isos``), ``iso_bundle`` (local bundle
directory, default ``bundle``), ``iso_prune`` (delete other files in ``iso_dir``; default no).
"""

from fleetforge.bundle.push import push_bundle
from fleetforge.runs.pyinfra_hook import recorded

with recorded():  # this run's record in the run store (README: Run records)
    push_bundle()
