"""The shared Nix store on two VMs joined by the test LAN (10.77.0.0/24): vm-blk-1 is the
``nix_cache`` host, vm-scsi-1 its client. A path built on the cache host is substituted (not
built) on the client with its signature checked; a client trusting another key refuses it;
the NFS variant mounts the export read-only and substitutes from ``file://``; an address that is
not in the inventory can neither fetch over HTTP nor mount; the secret key stays on the cache
host with mode 0600. Tests run in order."""

import re
import urllib.error
import urllib.request

import pytest

from fleetforge.nixcache.roles import CACHE_DIR, NFS_MOUNT, SECRET_KEY
from fleetforge.testbed import inventory_hosts
from tests.e2e import helpers

pytestmark = pytest.mark.vm

CACHE, CLIENT = "vm-blk-1", "vm-scsi-1"
CTX: dict = {}
NIX = "nix --extra-experimental-features nix-command"
BUILD = (
    "nix-build --no-out-link --option build-users-group '' --option sandbox false -E "
    '\'derivation {{ name = "{name}"; system = builtins.currentSystem; builder = "/bin/sh"; '
    'args = [ "-c" "echo {text} > $out" ]; }}\''
)


@pytest.fixture(scope="module")
def fleet(testbed, testbed_vms, tmp_path_factory):
    root = tmp_path_factory.mktemp("nixcache")
    entries = [(name, data) for name, data in inventory_hosts() if name in (CACHE, CLIENT)]
    assert all(data.get("lan_address") for _, data in entries), entries
    inventory = root / "inventory.py"
    inventory.write_text(
        "from fleetforge.inventory import group\n"
        f"hosts = group({entries!r}, {{'fleetforge_connector': 'asyncssh'}})\n"
        "def _cache_group(nfs=False, hosts=()):\n"
        "    return group(list(hosts), {'fleetforge_connector': 'asyncssh', 'nix_cache_nfs': nfs})\n"
        f"nix_cache = _cache_group(hosts=[{CACHE!r}])\n"
    )
    for name in (CACHE, CLIENT):
        testbed.reset(name)
    CTX.update(root=root, inventory=inventory, tb=testbed, logs=[], lan={n: d["lan_address"] for n, d in entries})
    return CTX


def ssh(name, command, check=True):
    return CTX["tb"].ssh(name, command, check=check)


def deploy(*extra):
    outputs = []
    for deploy_file in ("deploys/nix_cache.py", "deploys/vps.py"):
        result = helpers.run("pyinfra", "-y", str(CTX["inventory"]), deploy_file, *extra)
        CTX["logs"].append(result.stdout + result.stderr)
        assert result.returncode == 0, result.stdout + result.stderr
        outputs.append(result)
    return outputs


def build_on_cache(name, text):
    path = ssh(CACHE, BUILD.format(name=name, text=text)).stdout.strip().splitlines()[-1]
    assert path.startswith("/nix/store/") and path.endswith(name)
    ssh(CACHE, "systemctl start fleetforge-nix-cache.service")
    return path


def test_cache_host_gets_a_key_and_clients_trust_it_through_nix_conf(fleet):
    deploy()
    assert ssh(CACHE, f"stat -c %a {SECRET_KEY}").stdout.strip() == "600"
    public = ssh(CACHE, "cat /var/lib/fleetforge/nix-cache/public-key").stdout.strip()
    assert public.startswith(f"fleetforge-{CACHE}-1:")
    conf = ssh(CLIENT, "cat /etc/nix/nix.conf").stdout
    subs = re.search(r"^substituters = (.*)$", conf, re.M).group(1).split()
    assert subs[0] == f"http://{fleet['lan'][CACHE]}:5000?priority=30" and "https://cache.nixos.org" in subs
    assert public in re.search(r"^trusted-public-keys = (.*)$", conf, re.M).group(1).split()
    info = ssh(
        CLIENT,
        f"python3 -c \"import urllib.request as u; print(u.urlopen('http://{fleet['lan'][CACHE]}:5000/nix-cache-info', timeout=10).read().decode())\"",
    ).stdout
    assert "StoreDir: /nix/store" in info
    CTX["public"] = public


def test_a_path_built_on_the_cache_is_substituted_on_the_client_signature_checked(fleet):
    path = build_on_cache("ff-canary", "built-on-the-cache")
    assert ssh(CLIENT, f"test -e {path}", check=False).returncode != 0
    got = ssh(CLIENT, f"nix-store --realise {path} --option connect-timeout 5 2>&1")
    assert f"copying path '{path}' from 'http://{fleet['lan'][CACHE]}:5000'" in got.stdout
    assert "building" not in got.stdout
    assert ssh(CLIENT, f"cat {path}").stdout.strip() == "built-on-the-cache"
    sigs = ssh(CLIENT, f"{NIX} path-info --sigs {path}").stdout
    assert f"fleetforge-{CACHE}-1:" in sigs


def test_a_client_trusting_another_key_refuses_the_path(fleet):
    path = build_on_cache("ff-canary-2", "second")
    other = ssh(
        CACHE, "nix-store --generate-binary-cache-key other-1 /tmp/o.sec /tmp/o.pub && cat /tmp/o.pub; rm -f /tmp/o.sec"
    ).stdout.strip()
    got = ssh(
        CLIENT,
        f"nix-store --realise {path} --option connect-timeout 5 --option trusted-public-keys '{other}' 2>&1",
        check=False,
    )
    assert got.returncode != 0
    assert "is not signed by any of the keys in 'trusted-public-keys'" in got.stdout, got.stdout
    assert ssh(CLIENT, f"test -e {path}", check=False).returncode != 0


def verify_results():
    import json

    result = helpers.run("fleetforge", "verify", str(CTX["inventory"]), "--json")
    out = json.loads(result.stdout)
    return result.returncode, {(r["host"], r["item"]): (r["actual"], r["severity"]) for r in out["results"]}


def test_verify_checks_the_cache_from_every_host(fleet):
    code, results = verify_results()
    assert results[(CACHE, "nix cache secret key mode")] == ("600", "ok")
    assert results[(CLIENT, "nix cache answers nix-cache-info")] == ("StoreDir: /nix/store", "ok")
    source = f"http://{fleet['lan'][CACHE]}:5000"
    assert results[(CLIENT, "nix cache canary substituted")] == (f"copied from {source}", "ok")
    assert results[(CLIENT, "nix substituters")][1] == "ok"
    assert code == 0, [k for k, v in results.items() if v[1] != "ok"]
    # a client that no longer lists the cache is reported
    ssh(CLIENT, "sed -i 's|^substituters = .*|substituters = https://cache.nixos.org|' /etc/nix/nix.conf")
    code, results = verify_results()
    assert code == 1 and results[(CLIENT, "nix substituters")][1] == "fail"
    deploy()  # repaired by the next run
    assert verify_results()[0] == 0


def test_an_address_outside_the_inventory_gets_nothing_over_http(fleet):
    with pytest.raises(urllib.error.HTTPError) as err:  # this machine is 10.77.0.1 on the LAN
        urllib.request.urlopen(f"http://{fleet['lan'][CACHE]}:5000/nix-cache-info", timeout=10)
    assert err.value.code == 403


def test_nfs_export_is_mounted_read_only_and_substituted_from_file(fleet):
    text = fleet["inventory"].read_text()
    fleet["inventory"].write_text(text.replace("_cache_group(hosts=", "_cache_group(nfs=True, hosts="))
    deploy()
    mount = ssh(CLIENT, f"findmnt -no FSTYPE,OPTIONS {NFS_MOUNT}").stdout.split()
    assert mount[0].startswith("nfs") and "ro" in mount[1].split(",")
    exports = ssh(CACHE, "exportfs -v").stdout
    assert fleet["lan"][CLIENT] in exports and "root_squash" in exports and "/24" not in exports
    conf = ssh(CLIENT, "cat /etc/nix/nix.conf").stdout
    assert f"substituters = file://{NFS_MOUNT}?priority=30" in conf
    path = build_on_cache("ff-canary-nfs", "over-nfs")
    got = ssh(CLIENT, f"nix-store --realise {path} --option connect-timeout 5 2>&1")
    assert f"copying path '{path}' from 'file://{NFS_MOUNT}'" in got.stdout
    assert ssh(CLIENT, f"touch {NFS_MOUNT}/x", check=False).returncode != 0  # read-only
    code, results = verify_results()
    assert results[(CLIENT, "nix cache canary substituted")] == (f"copied from file://{NFS_MOUNT}", "ok")
    assert code == 0, [k for k, v in results.items() if v[1] != "ok"]


def test_a_host_outside_the_inventory_cannot_mount(fleet):
    """A third VM on the same LAN, not in the inventory, tries the export: refused by address."""
    outsider = "vm-blk-9"
    (vm,) = fleet["tb"].up([f"{outsider}:blk"])
    try:
        assert vm.lan_address not in fleet["lan"].values()
        got = fleet["tb"].ssh(
            outsider,
            f"mkdir -p /mnt/other && timeout 60 mount -t nfs -o ro,vers=4.2 {fleet['lan'][CACHE]}:{CACHE_DIR} /mnt/other 2>&1",
            check=False,
        )
        assert got.returncode != 0
        assert "access denied" in got.stdout.lower(), got.stdout
    finally:
        fleet["tb"].down([outsider])


def test_the_secret_key_never_left_the_cache_host(fleet):
    secret = ssh(CACHE, f"cat {SECRET_KEY}").stdout.strip()
    body = secret.split(":", 1)[1]
    assert len(body) > 40
    for log in CTX["logs"]:
        assert body not in log
    # the controller's files a run could have written to: the test's inventory folder, the
    # checkout, the testbed's state/keys (not the VM disk images: those are the hosts' own disks)
    testbed_run = fleet["tb"].layout.root / "run"
    for folder in (fleet["root"], helpers.REPO, testbed_run):
        found = helpers.run(
            "grep", "-rlF", "--exclude-dir=.venv", "--exclude-dir=.git", "--exclude-dir=vms", body, str(folder)
        )
        assert found.stdout == "", f"secret key found in {found.stdout}"
