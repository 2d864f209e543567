"""Lay out the disk named in each host's ``disk_layout.disk`` (a blank disk of a running Linux
host) as ``fleetforge disko`` plans it, and mount it under ``disk_layout.mount_root``.

    pyinfra inventory.py deploys/disk_layout.py --data ...   # or host data in the inventory

A disk that holds a partition table or any filesystem signature is refused (the run stops
before anything is written) unless ``disk_layout.confirm_wipe_serial`` is that disk's serial.
"""

from fleetforge.layout.apply import lay_out_disk
from fleetforge.runs.pyinfra_hook import recorded

with recorded():  # this run's record in the run store (README: Run records)
    lay_out_disk()
