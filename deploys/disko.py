"""Write each host's disko layout and hardware note for nixos-anywhere; changes no disk.

    pyinfra inventory.py deploys/disko.py          # /etc/fleetforge/disko.nix + disko-hardware.json
    fleetforge disko inventory.py                  # print the layouts locally instead

Paths: host data ``disk_layout = {"disko_file": ..., "hardware_file": ...}``.
"""

from fleetforge.layout.disko import push_disko
from fleetforge.runs.pyinfra_hook import recorded

with recorded():  # this run's record in the run store (README: Run records)
    push_disko()
