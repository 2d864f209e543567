"""Offline ISO bundle end to end: real ISO 9660 images served over HTTP (Range), fetched once with
``fleetforge bundle fetch``, pushed to two VMs over @asyncssh with ``deploys/iso_bundle.py``:
first push sends everything, the second nothing, a changed file alone is resent, the hosts'
copies carry the manifest's digests, other files are kept unless pruning is asked for, and a
host whose disk would pass 90 % is refused with nothing written. Tests run in order."""

import json
import re

import pytest

from fleetforge.testbed import inventory_hosts
from tests.bundle.conftest import HttpServer, digests, make_iso, manifest_text
from tests.e2e import helpers

pytestmark = pytest.mark.vm

HOSTS = ("vm-blk-1", "vm-scsi-1")
ISO_DIR = "/var/lib/hypervisor/isos"
CTX: dict = {}


@pytest.fixture(scope="module")
def bundle(testbed, testbed_vms, tmp_path_factory):
    root = tmp_path_factory.mktemp("iso")
    www = root / "www"
    www.mkdir()
    isos = [make_iso(www / "alpha.iso", 3_000_000, "alpha"), make_iso(www / "beta.iso", 1_500_000, "beta")]
    server = HttpServer(www, root / "http.log")
    manifest = root / "bundle.toml"
    manifest.write_text(manifest_text([{"name": i.name, "url": f"{server.url}/{i.name}", **digests(i)} for i in isos]))
    entries = [(name, data) for name, data in inventory_hosts() if name in HOSTS]
    inventory = root / "inventory.py"
    inventory.write_text(
        "from fleetforge.inventory import group\n"
        f"hosts = group({entries!r}, {{'fleetforge_connector': 'asyncssh', 'iso_bundle': {str(root / 'bundle')!r}}})\n"
    )
    for name in HOSTS:
        testbed.reset(name)
    CTX.update(root=root, www=www, manifest=manifest, inventory=inventory, server=server, testbed=testbed)
    yield CTX
    server.stop()


def run(*argv):
    return helpers.run(*argv, timeout=600)


def push(*extra):
    result = run("pyinfra", "-y", str(CTX["inventory"]), "deploys/iso_bundle.py", *extra)
    sent = {}
    for name in HOSTS:
        match = re.search(
            rf"\[{name}\]\s+iso bundle: (\d+) file\(s\) to send \((\d+) bytes\)", result.stdout + result.stderr
        )
        sent[name] = (int(match.group(1)), int(match.group(2))) if match else None
    return result, sent


def host_files(name):
    out = CTX["testbed"].ssh(
        name,
        f"cd {ISO_DIR} && for f in *; do echo $f $(sha256sum < $f | cut -c1-64) $(stat -c %Y $f); done",
        check=True,
    )
    return {line.split()[0]: tuple(line.split()[1:]) for line in out.stdout.splitlines()}


def test_fetch_builds_the_bundle_once(bundle):
    result = run("fleetforge", "bundle", "fetch", str(bundle["manifest"]), "--dir", str(bundle["root"] / "bundle"))
    assert result.returncode == 0, result.stderr
    assert "alpha.iso: downloaded" in result.stdout and "beta.iso: downloaded" in result.stdout


def test_status_reports_what_a_push_would_send(bundle):
    result = run("fleetforge", "bundle", "status", str(bundle["inventory"]), "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    total = sum(digests(bundle["www"] / f)["size"] for f in ("alpha.iso", "beta.iso"))
    for name in HOSTS:
        assert status[name]["send"] == ["alpha.iso", "beta.iso"] and status[name]["send_bytes"] == total
        assert status[name]["verdict"] == "ok" and status[name]["iso_dir"] == ISO_DIR


def test_first_push_sends_every_file_with_the_manifests_digests(bundle):
    total = sum(digests(bundle["www"] / f)["size"] for f in ("alpha.iso", "beta.iso"))
    result, sent = push()
    assert result.returncode == 0, result.stdout + result.stderr
    assert sent == {name: (2, total) for name in HOSTS}
    for name in HOSTS:
        files = host_files(name)
        assert sorted(files) == ["alpha.iso", "beta.iso"]
        for iso in ("alpha.iso", "beta.iso"):
            assert files[iso][0] == digests(bundle["www"] / iso)["sha256"]
        b2 = bundle["testbed"].ssh(name, f"b2sum {ISO_DIR}/alpha.iso", check=True).stdout.split()[0]
        assert b2 == digests(bundle["www"] / "alpha.iso")["blake2b"]
    CTX["after_first"] = {name: host_files(name) for name in HOSTS}


def test_second_push_sends_nothing(bundle):
    result, sent = push()
    assert result.returncode == 0
    assert sent == {name: (0, 0) for name in HOSTS}
    assert {name: host_files(name) for name in HOSTS} == CTX["after_first"]


def test_only_the_changed_file_is_sent(bundle):
    new_beta = make_iso(bundle["www"] / "beta.iso", 1_600_000, "beta-2")  # a new release of beta
    entries = [
        {"name": i, "url": f"{bundle['server'].url}/{i}", **digests(bundle["www"] / i)}
        for i in ("alpha.iso", "beta.iso")
    ]
    bundle["manifest"].write_text(manifest_text(entries))
    fetched = run("fleetforge", "bundle", "fetch", str(bundle["manifest"]), "--dir", str(bundle["root"] / "bundle"))
    assert "alpha.iso: present" in fetched.stdout and "beta.iso: downloaded" in fetched.stdout
    dry, sent = push("--dry")
    assert sent == {name: (1, new_beta.stat().st_size) for name in HOSTS}
    assert {name: host_files(name) for name in HOSTS} == CTX["after_first"]  # --dry sent nothing
    result, sent = push()
    assert result.returncode == 0, result.stdout + result.stderr
    assert sent == {name: (1, new_beta.stat().st_size) for name in HOSTS}
    for name in HOSTS:
        files = host_files(name)
        assert files["beta.iso"][0] == digests(new_beta)["sha256"]
        assert files["alpha.iso"] == CTX["after_first"][name]["alpha.iso"]  # not rewritten: same mtime


def test_other_files_are_kept_unless_pruning_is_asked_for(bundle):
    bundle["testbed"].ssh("vm-blk-1", f"echo mine > {ISO_DIR}/local.iso", check=True)
    push()
    assert "local.iso" in host_files("vm-blk-1")
    result, _ = push("--limit", "vm-blk-1", "--data", "iso_prune=true")
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(host_files("vm-blk-1")) == ["alpha.iso", "beta.iso"]


def test_a_host_whose_disk_would_pass_90_percent_is_refused_and_untouched(bundle):
    small = "/srv/small-isos"
    bundle["testbed"].ssh("vm-scsi-1", f"mkdir -p {small} && mount -t tmpfs -o size=5M tmpfs {small}", check=True)
    try:
        result, sent = push("--data", f"iso_dir={small}")
        log = result.stdout + result.stderr
        assert result.returncode != 0
        assert re.search(r"\[vm-scsi-1\].*refused: the filesystem would be \d+\.\d% used \(limit 90%\)", log), log
        assert sent["vm-blk-1"] == (2, sum(digests(bundle["www"] / f)["size"] for f in ("alpha.iso", "beta.iso")))
        listing = bundle["testbed"].ssh("vm-scsi-1", f"ls -A {small}", check=True).stdout
        assert listing == ""  # nothing written, not even a temporary file
    finally:
        bundle["testbed"].ssh("vm-scsi-1", f"umount {small}", check=False)
        bundle["testbed"].ssh("vm-blk-1", f"rm -rf {small}", check=False)
