"""Tune every non-NixOS Linux VPS of the inventory for its own hardware.

    pyinfra inventory.py deploys/vps.py            # push
    pyinfra inventory.py deploys/vps.py --dry --diff   # show plan and diff, change nothing

What it does and why each value is chosen: ``fleetforge plan inventory.py``.
"""

from fleetforge.runs.pyinfra_hook import recorded
from fleetforge.vps import tune_host

with recorded():  # this run's record in the run store (README: Run records)
    tune_host()
