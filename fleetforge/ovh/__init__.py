"""OVH: a pyinfra inventory read from the OVH API, and the check of a host against its model.

Public API::

    inventory(group_data=None, *, endpoint=None, application_key=None, application_secret=None,
              consumer_key=None, config_file=None, cache_s=300, kinds=("vps", "dedicated"),
              timeout_s=30) -> OvhFleet          # .all, .groups(), .skipped
    OvhModel(name, vcores, memory_mib, disk_gb)  # the ovh_model host data
    model_mismatches(facts, model) -> list[str]
    OvhError                                     # every failure, one line

Importing this package is cheap: the ``ovh`` client (and ``requests``) is imported on the first
API call, ``fleetforge.inventory`` when a group is built. See docs/ovh.md.
"""

from fleetforge.ovh.errors import OvhError
from fleetforge.ovh.hardware import OvhModel, model_mismatches
from fleetforge.ovh.inventory import OvhFleet, inventory

__all__ = ["OvhError", "OvhFleet", "OvhModel", "inventory", "model_mismatches"]
