"""Managed files on a real VM, deployed as a non-root user with sudo (the path where pyinfra's
uploads go through ``/tmp/pyinfra-<sha1>``), over ``@asyncssh`` and pyinfra's ``@ssh``:

- an existing 0600 ``nix.conf`` holding ``access-tokens`` keeps its mode, owner and token line;
  ``--diff``, ``fleetforge plan --json`` and ``probe --json`` never print the token;
- symlinks planted at the old fixed temporary names are not followed, and no temporary file is
  left in /tmp or next to the managed files;
- a read-only ``/etc/udev/rules.d`` fails that host's write naming the path and the cause, leaves
  nothing behind, and once writable again a re-run converges and a second one changes nothing.
"""

import hashlib

import pytest

from fleetforge.testbed import inventory_hosts
from tests.e2e import helpers

pytestmark = pytest.mark.vm

VM = "vm-blk-1"
SECRET = "SECRET123"
NIX_CONF = f"sandbox = false\naccess-tokens = github.com={SECRET}\n"
OLD_TEMP = "/etc/nix/nix.conf.fleetforge-new"
PYINFRA_TEMP = f"/tmp/pyinfra-{hashlib.sha1(OLD_TEMP.encode()).hexdigest()}"
SETUP = (
    "id deployer >/dev/null 2>&1 || useradd -m -s /bin/sh deployer && "
    "install -d -o deployer -m 700 /home/deployer/.ssh && "
    "install -o deployer -m 600 /root/.ssh/authorized_keys /home/deployer/.ssh/authorized_keys && "
    "echo 'deployer ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/deployer && chmod 440 /etc/sudoers.d/deployer && "
    "mkdir -p /etc/nix && cat > /etc/nix/nix.conf && chown root:adm /etc/nix/nix.conf && chmod 600 /etc/nix/nix.conf && "
    f"echo precious > /root/victim && ln -s /root/victim {OLD_TEMP} && ln -s /root/victim {PYINFRA_TEMP}"
)
DIRS = "/etc/udev/rules.d /etc/sysctl.d /etc/systemd /etc/nix /tmp /var/tmp"
LEFTOVERS = f"find {DIRS} -maxdepth 1 \\( -name '.*.fleetforge-*' -o -name 'pyinfra-*' \\) ! -type l"


@pytest.fixture(params=["asyncssh", "ssh"])
def vm(request, testbed, testbed_vms, tmp_path):
    testbed.reset(VM)
    testbed.ssh(VM, SETUP, input=NIX_CONF, check=True)
    data = dict(next(d for name, d in inventory_hosts() if name == VM), ssh_user="deployer", _sudo=True)
    inventory = tmp_path / "inventory.py"
    inventory.write_text(
        "from fleetforge.inventory import group\n"
        f"hosts = group([({VM!r}, {data!r})], {{'fleetforge_connector': {request.param!r}}})\n"
    )
    yield testbed, str(inventory)
    testbed.reset(VM)


def test_sudo_deploy_keeps_mode_owner_and_secret_and_uses_no_fixed_temp_name(vm):
    testbed, inventory = vm
    out = helpers.run("pyinfra", "-y", "--diff", inventory, "deploys/vps.py")
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-4000:]
    assert "Will modify /etc/nix/nix.conf" in text and "access-tokens = <redacted>" in text
    assert SECRET not in text
    state = testbed.ssh(
        VM,
        "stat -c '%a %U %G' /etc/nix/nix.conf /etc/nix/nix.conf.fleetforge-*.bak; grep -c SECRET123 /etc/nix/nix.conf; "
        f"cat /root/victim; readlink {OLD_TEMP} {PYINFRA_TEMP}; {LEFTOVERS}",
        check=True,
    ).stdout.splitlines()
    assert state == ["600 root adm", "600 root adm", "1", "precious", "/root/victim", "/root/victim"]
    for command in (["plan", inventory, "--json"], ["probe", inventory, "--json"]):
        shown = helpers.run("fleetforge", *command)
        assert shown.returncode == 0, shown.stderr[-2000:]
        assert SECRET not in shown.stdout + shown.stderr and "access-tokens = <redacted>" in shown.stdout


def test_read_only_directory_fails_with_path_and_cause_then_converges(vm):
    testbed, inventory = vm
    testbed.ssh(VM, "mount -t tmpfs -o ro,size=64k,mode=755 tmpfs /etc/udev/rules.d", check=True)
    out = helpers.run("pyinfra", "-y", inventory, "deploys/vps.py")
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "fleetforge: writing /etc/udev/rules.d/60-fleetforge-io.rules failed: mktemp: " in text, text[-3000:]
    assert "Read-only file system" in text
    assert testbed.ssh(VM, f"umount /etc/udev/rules.d && {LEFTOVERS}", check=True).stdout == ""
    assert helpers.run("pyinfra", "-y", inventory, "deploys/vps.py").returncode == 0
    again = helpers.run("pyinfra", "-y", inventory, "deploys/vps.py")
    grand_total = next(line for line in (again.stdout + again.stderr).splitlines() if "Grand total" in line)
    assert grand_total.split()[-3:-1] == ["-", "-"], grand_total  # no change, no error
