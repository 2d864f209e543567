"""The shared Nix store: the ``nix_cache`` host becomes the fleet's signed binary cache (HTTP via
nginx, optionally NFS), NFS clients mount it. Then run ``deploys/vps.py`` so clients trust it:

    pyinfra inventory.py deploys/nix_cache.py && pyinfra inventory.py deploys/vps.py

See ``fleetforge/nixcache/roles.py`` for roles, addresses, keys and rotation.
"""

from fleetforge.nixcache.deploy import nix_cache
from fleetforge.runs.pyinfra_hook import recorded

with recorded():  # this run's record in the run store (README: Run records)
    nix_cache()
