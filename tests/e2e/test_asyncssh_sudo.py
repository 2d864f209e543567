"""``@asyncssh`` on a real VM as a non-root user with sudo: uploads land with the owner and mode
asked for, a plain upload stays the user's, ``_sudo_user`` runs as that user, and a root-only
file comes back through ``files.get`` with ``_sudo``."""

import textwrap

import pytest

from fleetforge.testbed import inventory_hosts
from tests.e2e import helpers

pytestmark = pytest.mark.vm

VM = "vm-blk-1"
SETUP = (
    "id deployer >/dev/null 2>&1 || useradd -m -s /bin/sh deployer && "
    "install -d -o deployer -m 700 /home/deployer/.ssh && "
    "install -o deployer -m 600 /root/.ssh/authorized_keys /home/deployer/.ssh/authorized_keys && "
    "echo 'deployer ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/deployer && chmod 440 /etc/sudoers.d/deployer"
)


@pytest.fixture
def deployer_vm(testbed, testbed_vms):
    testbed.reset(VM)
    testbed.ssh(VM, SETUP, check=True)
    yield testbed
    testbed.reset(VM)


def test_sudo_uploads_and_downloads_as_a_non_root_user(deployer_vm, tmp_path):
    data = dict(next(d for name, d in inventory_hosts() if name == VM), ssh_user="deployer")
    (tmp_path / "inventory.py").write_text(
        f"from fleetforge.inventory import group\nhosts = group([({VM!r}, {data!r})], {{'fleetforge_connector': 'asyncssh'}})\n"
    )
    fetched = tmp_path / "fetched.conf"
    (tmp_path / "deploy.py").write_text(
        textwrap.dedent(f"""
        from io import StringIO
        from pyinfra.operations import files, server
        files.put(name="as root, 640", src=StringIO("secret=1\\n"), dest="/etc/ff-sudo.conf",
                  user="root", group="root", mode="640", _sudo=True)
        files.put(name="sudo, no mode", src=StringIO("plain\\n"), dest="/etc/ff-sudo-default.conf", _sudo=True)
        files.put(name="as the user", src=StringIO("mine\\n"), dest="/home/deployer/mine.txt")
        server.shell(name="as nobody", commands=["id -un > /tmp/ff-whoami"], _sudo=True, _sudo_user="nobody")
        files.get(name="fetch root-only", src="/etc/ff-sudo.conf", dest={str(fetched)!r}, _sudo=True)
        """)
    )
    run = helpers.run("pyinfra", "-y", str(tmp_path / "inventory.py"), str(tmp_path / "deploy.py"))
    assert run.returncode == 0, run.stdout + run.stderr
    stat = deployer_vm.ssh(
        VM,
        "stat -c '%n %U %G %a' /etc/ff-sudo.conf /etc/ff-sudo-default.conf /home/deployer/mine.txt; "
        "cat /etc/ff-sudo.conf /tmp/ff-whoami; ls /tmp | grep -c pyinfra || true",
        check=True,
    ).stdout.splitlines()
    assert stat == [
        "/etc/ff-sudo.conf root root 640",
        "/etc/ff-sudo-default.conf root root 644",
        "/home/deployer/mine.txt deployer deployer 644",
        "secret=1",
        "nobody",
        "0",  # the temporary upload copies are gone
    ]
    assert fetched.read_text() == "secret=1\n"
