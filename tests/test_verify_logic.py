"""verify's pure parts: which checks a plan yields, how live values are judged, exit codes."""

from fleetforge.planner import plan_host
from fleetforge.settings import HostSettings, settings_from_data
from fleetforge.verify import CheckResult, checks_for, evaluate, exit_code
from tests.conftest import facts_from


def plan(name="qemu-virtio-scsi-sda-bios", **data):
    return plan_host("h", facts_from(name), settings_from_data("h", data) if data else HostSettings())


def test_checks_cover_every_planned_value():
    p = plan()
    items = {c.item: c for c in checks_for(p)}
    assert items["sda scheduler"].path == "/sys/block/sda/queue/scheduler"
    assert items["sysctl net.ipv4.tcp_rmem"].expected == "4096 87380 134217728"
    assert items["zram0 disksize"].expected == str(p.zram.size_mib.value * 1048576)
    assert {f"nix {k}" for k in p.nix.settings} <= set(items)
    assert "podman storage driver" not in items  # Podman from Debian on ext4: its default kept, not checked
    assert len(items) == 2 * len(p.disks) + len(p.sysctls) + 3 + 1 + len(p.nix.settings)
    off = {c.item for c in checks_for(plan(zram=False))}
    assert "zram0 swap" in off and "zram0 disksize" not in off


def test_evaluate_parses_bracketed_and_whitespace_values():
    checks = {c.item: c for c in checks_for(plan())}
    live = {
        "/sys/block/sda/queue/scheduler": "[none] mq-deadline\n",
        "/proc/sys/net/ipv4/tcp_rmem": "4096\t87380\t134217728\n",
        "/proc/swaps": "Filename Type Size Used Priority\n/dev/zram0 partition 1 0 100\n",
    }
    assert evaluate("h", checks["sda scheduler"], live).severity == "ok"
    assert evaluate("h", checks["sysctl net.ipv4.tcp_rmem"], live).severity == "ok"
    assert evaluate("h", checks["zram0 swap priority"], live).severity == "ok"
    live["/sys/block/sda/queue/scheduler"] = "none [mq-deadline]"
    bad = evaluate("h", checks["sda scheduler"], live)
    assert bad.severity == "fail" and bad.line() == "FAIL h: sda scheduler: expected 'none', got 'mq-deadline'"
    assert evaluate("h", checks["sysctl vm.swappiness"], live).severity == "fail"  # unreadable = failure
    assert evaluate("h", checks["nix fsync-metadata"], live).severity == "warn"  # unknown to this Nix = warning


def test_exit_codes_follow_seed_001():
    ok = CheckResult("h", "i", "1", "1", "ok")
    warn = CheckResult("h", "i", "1", None, "warn")
    fail = CheckResult("h", "i", "1", "2", "fail")
    assert [exit_code([ok]), exit_code([ok, warn]), exit_code([warn, fail]), exit_code([])] == [0, 2, 1, 0]


# ---------------------------------------------------------------- what a reboot would lose


class TreeHost:
    """A host whose ``/`` is ``root`` (a temporary directory): ``run`` executes verify's real
    read script with ``sh``, the paths moved under ``root`` and the output moved back."""

    def __init__(self, root):
        self.root = str(root)

    def run(self, command):
        import shlex
        import subprocess
        from types import SimpleNamespace

        argv = shlex.split(command)
        moved = [
            self.root + arg
            if arg.startswith("/")
            else arg.replace(":/", f":{self.root}/")
            if arg.startswith(("sha256:", "exists:"))
            else arg
            for arg in argv
        ]
        out = subprocess.run(moved, capture_output=True, text=True, check=False)
        return SimpleNamespace(rc=out.returncode, stdout=out.stdout.replace(self.root, ""), stderr=out.stderr)

    def write(self, files: dict[str, str]) -> None:
        from pathlib import Path

        for path, content in files.items():
            target = Path(self.root + path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)


def deployed(tmp_path, name="qemu-virtio-scsi-sda-bios"):
    """A host tree holding exactly what the deploy writes for the fixture's plan, and the checks."""
    from fleetforge.components import desired_files
    from fleetforge.verify import persistence_checks

    facts = facts_from(name)
    p = plan_host("h", facts, HostSettings())
    host = TreeHost(tmp_path)
    host.write(desired_files(p, facts))
    host.write({"/usr/lib/systemd/system-generators/zram-generator": "#!/bin/sh\n"})
    return host, list(persistence_checks(p, facts))


def test_persistence_checks_hash_every_file_the_deploy_writes():
    import hashlib

    from fleetforge.components import desired_files
    from fleetforge.verify import persistence_checks

    facts = facts_from("qemu-virtio-scsi-sda-bios")
    p = plan_host("h", facts, HostSettings())
    checks = {c.item: c for c in persistence_checks(p, facts)}
    files = desired_files(p, facts)
    assert {f"file {path} sha256" for path in files} | {"zram-generator installed"} == set(checks)
    for path, content in files.items():
        assert checks[f"file {path} sha256"].expected == hashlib.sha256(content.encode()).hexdigest()
    off = {c.item for c in persistence_checks(plan(zram=False), facts)}
    assert "zram-generator installed" not in off and "file /etc/systemd/zram-generator.conf sha256" in off


def test_verify_fails_naming_a_deleted_or_edited_managed_file(tmp_path):
    import os

    from fleetforge.verify import run_checks

    host, checks = deployed(tmp_path)
    assert {r.severity for r in run_checks("h", host, checks)} == {"ok"}
    os.remove(tmp_path / "etc/systemd/zram-generator.conf")
    with open(tmp_path / "etc/sysctl.d/60-fleetforge.conf", "a") as f:
        f.write("vm.swappiness = 1\n")
    bad = {r.item: r for r in run_checks("h", host, checks) if r.severity != "ok"}
    assert set(bad) == {"file /etc/systemd/zram-generator.conf sha256", "file /etc/sysctl.d/60-fleetforge.conf sha256"}
    deleted = bad["file /etc/systemd/zram-generator.conf sha256"]
    assert (deleted.actual, deleted.severity) == ("absent", "fail")
    assert (
        deleted.line()
        == f"FAIL h: file /etc/systemd/zram-generator.conf sha256: expected '{deleted.expected}', got 'absent'"
    )
    edited = bad["file /etc/sysctl.d/60-fleetforge.conf sha256"]
    assert edited.severity == "fail" and len(edited.actual) == 64 and edited.actual != edited.expected
    assert exit_code(list(bad.values())) == 1
    os.remove(tmp_path / "usr/lib/systemd/system-generators/zram-generator")
    missing = [r for r in run_checks("h", host, checks) if r.item == "zram-generator installed"]
    assert [(r.actual, r.severity) for r in missing] == [("absent", "fail")]


def test_nix_conf_hashes_what_the_deploy_writes_with_the_lines_it_keeps(tmp_path):
    """nix.conf's expected content keeps the host's own lines (as the deploy does): a line the
    operator added outside fleetforge's block is not drift; an edit inside the block is."""
    from fleetforge.components import desired_files
    from fleetforge.models import ManagedFile
    from fleetforge.paths import NIX_CONF
    from fleetforge.verify import persistence_checks, run_checks

    facts = facts_from("qemu-virtio-scsi-sda-bios")
    p = plan_host("h", facts, HostSettings())
    own = "extra-platforms = aarch64-linux\n"
    facts = facts.model_copy(update={"files": {**facts.files, NIX_CONF: ManagedFile(sha256="x", content=own)}})
    written = desired_files(p, facts)[NIX_CONF]
    assert written.startswith(own)
    host = TreeHost(tmp_path)
    host.write({NIX_CONF: written})
    check = next(c for c in persistence_checks(p, facts) if NIX_CONF in c.item)
    assert run_checks("h", host, [check])[0].severity == "ok"
    host.write({NIX_CONF: written.replace("max-jobs", "max-jobs = 99\n#")})
    assert run_checks("h", host, [check])[0].severity == "fail"


def test_nixos_hosts_check_their_modules_and_the_import():
    from fleetforge.models import ManagedFile
    from fleetforge.nixos.modules import ensure_import, render_modules
    from fleetforge.paths import NIXOS_CONFIGURATION
    from fleetforge.verify import file_check, persistence_checks

    facts = facts_from("qemu-virtio-blk-vda-bios")
    conf = "{ config, ... }:\n{\n  imports = [ ./hardware-configuration.nix ];\n}\n"
    facts = facts.model_copy(
        update={
            "os": facts.os.model_copy(update={"id": "nixos"}),
            "files": {**facts.files, NIXOS_CONFIGURATION: ManagedFile(sha256="x", content=conf)},
        }
    )
    p = plan_host("h", facts, HostSettings())
    extra = {"nix-cache.nix": {"services": {"nix-serve": {"enable": True}}}}
    checks = list(persistence_checks(p, facts, extra))
    modules = render_modules(p, facts, extra=extra)
    assert "./nix-cache.nix" in modules["/etc/nixos/fleetforge/default.nix"]
    expected = [file_check(path, content) for path, content in modules.items()]
    assert checks == [*expected, file_check(NIXOS_CONFIGURATION, ensure_import(conf))]


def test_a_marker_line_inside_a_file_does_not_replace_another_value(tmp_path):
    """A file holding lines shaped like read markers: every value stays where it belongs."""
    import hashlib

    from fleetforge.verify import Check, read_live

    host = TreeHost(tmp_path)
    host.write({"/etc/a.conf": "@@/etc/b.conf\nforged\n@@ sha256:/etc/b.conf\nforged\n", "/etc/b.conf": "real\n"})
    live = read_live(host, [Check("a", "", "/etc/a.conf"), Check("b", "", "sha256:/etc/b.conf")])
    assert live["/etc/a.conf"].splitlines()[:2] == ["@@/etc/b.conf", "forged"]
    assert live["sha256:/etc/b.conf"] == hashlib.sha256(b"real\n").hexdigest()
