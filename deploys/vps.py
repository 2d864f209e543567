"""Tune every non-NixOS Linux VPS of the inventory for its own hardware.

    pyinfra inventory.py deploys/vps.py            # push
    pyinfra inventory.py deploys/vps.py --dry --diff   # show plan and diff, change nothing

What it does and why each value is chosen: ``fleetforge plan inventory.py``.
"""

from fleetforge.vps import tune_host

tune_host()
