"""verify checks what a reboot would lose (issue: a deleted managed file passed verify): on a
real VM after a deploy, deleting ``zram-generator.conf`` or editing the udev rules makes
``fleetforge verify`` exit 1 naming the file; the next deploy puts them back and verify passes.

Run as every VM test: ``flock /tmp/fleetforge-vm.lock python -m pytest tests/e2e/...``.
"""

import pytest

from tests.e2e import helpers

pytestmark = pytest.mark.vm

VM = "vm-blk-1"
ZRAM_CONF = "/etc/systemd/zram-generator.conf"
UDEV_RULES = "/etc/udev/rules.d/60-fleetforge-io.rules"


@pytest.fixture(scope="module")
def deployed(testbed, testbed_vms, tmp_path_factory):
    inventory = tmp_path_factory.mktemp("inventory") / "inventory.py"
    inventory.write_text(
        "from fleetforge.testbed import inventory_hosts\n"
        f"hosts = [entry for entry in inventory_hosts() if entry[0] == {VM!r}]\n"
    )
    testbed.reset(VM)
    out = helpers.run("pyinfra", "-y", str(inventory), "deploys/vps.py")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    return testbed, str(inventory)


def verify(inventory):
    return helpers.run("fleetforge", "verify", inventory)


def test_a_fresh_deploy_passes_with_every_file_checked(deployed):
    _, inventory = deployed
    out = verify(inventory)
    assert out.returncode == 0, out.stdout
    assert f"{VM}: 36/36 checks passed" in out.stdout  # 31 live values (2 watermark sysctls) + 4 files + zram-generator


def test_a_deleted_or_edited_managed_file_fails_verify_naming_it(deployed):
    testbed, inventory = deployed
    testbed.ssh(VM, f"rm {ZRAM_CONF} && echo '# edited' >> {UDEV_RULES}", check=True)
    out = verify(inventory)
    assert out.returncode == 1, out.stdout
    failed = sorted(line.strip() for line in out.stdout.splitlines() if line.strip().startswith("FAIL"))
    assert len(failed) == 2, out.stdout
    assert failed[0].startswith(f"FAIL {VM}: file {ZRAM_CONF} sha256: expected '") and failed[0].endswith(
        "got 'absent'"
    )
    assert failed[1].startswith(f"FAIL {VM}: file {UDEV_RULES} sha256: expected '")
    assert f"{VM}: 34/36 checks passed" in out.stdout  # the live values are still right: zram0 is up until a reboot
    redeploy = helpers.run("pyinfra", "-y", inventory, "deploys/vps.py")
    assert redeploy.returncode == 0, redeploy.stdout[-3000:]
    assert verify(inventory).returncode == 0
