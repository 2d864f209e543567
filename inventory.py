"""The fleet that ``pyinfra inventory.py deploys/vps.py`` tunes.

By default it is the local test hosts: QEMU VMs that look like OVH VPS (virtio disks, ens3),
started with ``fleetforge testbed up``. Their SSH ports, key and known_hosts file are read from
the testbed's state file; only VMs whose QEMU process runs are listed, so this group is empty
until they are up.

Real hosts: add a group below. Each host is ``"name"`` or ``("name", {data})``; a group may be
``([hosts], {group data})``. Connection keys are pyinfra's ``@ssh`` connector's, which
fleetforge's ``@asyncssh`` connector takes too; ``fleetforge.inventory.group`` picks the
connector from the data (``fleetforge_connector``: ``"asyncssh"`` or ``"ssh"``, host data
overriding group data):

    ovh = group(
        [
            ("vps-1", {"ssh_hostname": "203.0.113.10"}),
            ("vps-2", {"ssh_hostname": "203.0.113.11", "zram_size": "2G"}),
        ],
        {
            "ssh_user": "debian",                      # OVH's default user on Debian images
            "ssh_port": 22,
            "ssh_key": "~/.ssh/id_ed25519",            # or leave out to use ssh-agent
            "ssh_known_hosts_file": "~/.ssh/known_hosts",
            "ssh_strict_host_key_checking": "yes",     # unknown or changed host keys are refused
            "_sudo": True,                             # the deploy writes /etc: run it via sudo
            "fleetforge_connector": "asyncssh",        # one connection per host, commands as channels
        },
    )

Host entries in ``~/.ssh/config`` apply too (``ssh_config_file``). fleetforge's own settings
(``zram_size``, ``io_scheduler``, ``disks``, ``sysctl``, ``nix_settings``, ...) go in the same
data; see ``fleetforge/settings.py`` for every key. Unknown keys stop the run with an error
naming the host and key; declare your own deploys' keys in ``extra_data_keys``.
"""

from fleetforge.inventory import group
from fleetforge.testbed import inventory_hosts

# The local QEMU test hosts (group "testbed"): vm-blk-1 (virtio-blk /dev/vda, 1 GiB, 1 vCPU)
# and vm-scsi-1 (virtio-scsi /dev/sda, 2 GiB, 2 vCPUs), reached over fleetforge's @asyncssh.
testbed = group(inventory_hosts(running_only=True), {"fleetforge_connector": "asyncssh"})
