"""The Nix settings component in one place: rule, file, NixOS options, checks, restore, rows."""

from fleetforge.components.nix_settings import NIX_BEGIN, NIX_DAEMON_RESTART, NIXOS_CACHE_KEY, NixSettings
from fleetforge.models import ManagedFile
from fleetforge.paths import NIX_CONF
from fleetforge.planner import plan_host
from tests.components.helpers import facts, settings, snap

NIX = NixSettings()


def test_jobs_times_cores_is_the_vcpu_count_and_caches_come_first():
    f = facts("qemu-virtio-scsi-sda-bios")  # 2 vCPUs
    p = plan_host("h", f, settings(nix_substituters=["https://c.example.org"]))
    s = {k: v.value for k, v in p.nix.settings.items()}
    assert (s["max-jobs"], s["cores"]) == ("1", "2")
    assert s["substituters"] == "https://c.example.org https://cache.nixos.org"
    assert plan_host("h", f, settings(nix=False)).nix is None


def test_on_nixos_cache_nixos_org_is_left_to_nixos():
    f = facts()
    nixos = f.model_copy(update={"os": f.os.model_copy(update={"id": "nixos"})})
    s = plan_host("h", nixos, settings()).nix.settings
    assert "substituters" not in s and "trusted-public-keys" not in s
    checks = {
        c.item: c for c in NIX.checks(plan_host("h", nixos, settings(nix_trusted_public_keys=["k:AAAA"])), nixos=True)
    }
    assert checks["nix trusted-public-keys"].expected == " ".join(sorted(["k:AAAA", NIXOS_CACHE_KEY]))
    assert "nix.conf managed block" not in checks  # NixOS generates nix.conf


def test_file_keeps_the_hosts_own_lines_and_nixos_gets_typed_values():
    f = facts()
    f = f.model_copy(
        update={"files": {**f.files, NIX_CONF: ManagedFile(sha256="0" * 64, content="sandbox = false\ncores = 9\n")}}
    )
    p = plan_host("h", f, settings())
    text = NIX.file(p, f)
    assert text.startswith("sandbox = false\n" + NIX_BEGIN) and [
        line for line in text.splitlines() if line.startswith("cores =")
    ] == ["cores = 1"]
    nix = NIX.nixos_options(p, f)["nix"]["settings"]
    assert nix["max-jobs"] == 1 and nix["fsync-metadata"] is True and nix["substituters"] == ["https://cache.nixos.org"]


def test_restart_and_restore_only_with_a_daemon_and_a_changed_file():
    f = facts()
    p = plan_host("h", f, settings())
    with_daemon = f.model_copy(update={"nix": f.nix.model_copy(update={"daemon_unit": True})})
    without = f.model_copy(update={"nix": f.nix.model_copy(update={"daemon_unit": False})})
    assert NIX.apply(p, with_daemon) == NIX_DAEMON_RESTART and NIX.apply(p, without) == ()
    cmds, _ = NIX.restore(snap(), snap(), [NIX_CONF])
    assert cmds == [
        "if systemctl cat nix-daemon.service >/dev/null 2>&1; then systemctl try-restart nix-daemon.service; fi"
    ]
    assert NIX.restore(snap(), snap(), []) == ([], [])


def test_rows_mask_secret_settings():
    p = plan_host("h", facts(), settings(nix_settings={"access-tokens": "github.com=ghp_x"}))
    rows = {row[0]: row[1] for row in NIX.rows(p, lambda key: key == "access-tokens")}
    assert rows["nix access-tokens"] == "<redacted>" and rows["nix max-jobs"] == "1"
