"""The ISO push on a VM over @asyncssh (SFTP as root) into a directory a local attacker prepared:
symbolic links at the names the old push wrote to (``.<name>.fleetforge-tmp``,
``.fleetforge-sums.tmp``) and at the sums list, file names with a newline, a backslash, quotes,
``$(...)`` and bytes that are not UTF-8. Nothing is written through a link, the odd names are
pruned exactly, the name that is not UTF-8 is reported and kept, nothing ran on the host or the
controller, no temporary entry is left, and a second push sends nothing."""

import re

import pytest

from fleetforge.testbed import inventory_hosts
from tests.bundle.conftest import HttpServer, make_iso, manifest_text
from tests.bundle.conftest import digests as file_digests
from tests.e2e import helpers

pytestmark = pytest.mark.vm

HOST = "vm-blk-1"
ISO_DIR = "/srv/hostile-isos"
# printf formats (octal escapes), so every byte reaches the VM exactly
ODD = {r"a\nb.iso", r"back\\slash.iso", r"x'\''; touch MARKER; '\''.iso", r"$(touch MARKER).iso"}
PLANT = f"""
set -e
rm -rf {ISO_DIR} /root/victim /root/secret; mkdir -m 755 {ISO_DIR}; cd {ISO_DIR}
echo victim > /root/victim; echo 'a b c d' > /root/secret
ln -s /root/victim .alpha.iso.fleetforge-tmp; ln -s /root/victim .fleetforge-sums.tmp
ln -s /root/secret .fleetforge-sums; ln -s /root/victim linked.iso
for n in {" ".join(f"'{name}'" for name in sorted(ODD))} '\\377.iso'; do echo odd > "$(printf "$n")"; done
"""


@pytest.fixture(scope="module")
def setup(testbed, testbed_vms, tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-iso")
    www = root / "www"
    www.mkdir()
    iso = make_iso(www / "alpha.iso", 500_000, "alpha")
    server = HttpServer(www, root / "http.log")
    manifest = root / "bundle.toml"
    manifest.write_text(manifest_text([{"name": "alpha.iso", "url": f"{server.url}/alpha.iso", **file_digests(iso)}]))
    entries = [(name, data) for name, data in inventory_hosts() if name == HOST]
    inventory = root / "inventory.py"
    inventory.write_text(
        "from fleetforge.inventory import group\n"
        f"hosts = group({entries!r}, {{'fleetforge_connector': 'asyncssh', 'iso_bundle': {str(root / 'bundle')!r},"
        f" 'iso_dir': {ISO_DIR!r}, 'iso_prune': True}})\n"
    )
    testbed.reset(HOST)
    fetched = helpers.run("fleetforge", "bundle", "fetch", str(manifest), "--dir", str(root / "bundle"))
    assert fetched.returncode == 0, fetched.stderr
    testbed.ssh(HOST, PLANT, check=True)
    yield {"root": root, "inventory": inventory, "testbed": testbed, "iso": iso}
    server.stop()


def push(setup):
    result = helpers.run("pyinfra", "-y", str(setup["inventory"]), "deploys/iso_bundle.py")
    return result, result.stdout + result.stderr


def test_push_writes_nothing_through_links_and_prunes_odd_names_exactly(setup):
    result, log = push(setup)
    assert result.returncode == 0, log
    assert re.search(r"iso bundle: 1 file\(s\) to send \(\d+ bytes\), 0 up to date, 4 to prune", log), log
    assert "left alone b'\\xff.iso' in /srv/hostile-isos: the name is not UTF-8" in log
    ssh = setup["testbed"].ssh
    assert ssh(HOST, "cat /root/victim /root/secret", check=True).stdout == "victim\na b c d\n"
    listing = ssh(HOST, f"cd {ISO_DIR} && ls -A --quoting-style=escape", check=True).stdout.split()
    assert sorted(listing) == sorted(
        [".alpha.iso.fleetforge-tmp", ".fleetforge-sums", ".fleetforge-sums.tmp", "alpha.iso", "linked.iso", "\\377.iso"]
    )  # fmt: skip
    checks = f"cd {ISO_DIR} && test ! -L .fleetforge-sums && stat -c %a alpha.iso && sha256sum < alpha.iso"
    mode, digest = ssh(HOST, checks, check=True).stdout.split()[:2]
    assert (mode, digest) == ("644", file_digests(setup["iso"])["sha256"])
    assert ssh(HOST, f"cut -d' ' -f1 {ISO_DIR}/.fleetforge-sums", check=True).stdout == "alpha.iso\n"
    assert ssh(HOST, f"ls -A / /root {ISO_DIR} | grep -c MARKER || true", check=True).stdout.strip() == "0"
    assert not (helpers.REPO / "MARKER").exists()


def test_a_second_push_sends_nothing(setup):
    result, log = push(setup)
    assert result.returncode == 0, log
    assert "iso bundle: 0 file(s) to send (0 bytes), 1 up to date" in log
