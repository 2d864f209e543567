"""What each command records: ``fleetforge probe``/``plan`` and ``pyinfra ... deploys/vps.py``
against pyinfra's ``@fake`` hosts replaying captured probes (a broken probe, a host whose data
does not fit, a refused SSH port on loopback), ``verify``/``tune``/``rollout`` in-process with
their host work replaced; the flags and ``FLEETFORGE_RUN_STORE``; a store that cannot be
written; and no secret of the hosts in the store's bytes."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleetforge import cli
from fleetforge import verify as fv
from fleetforge.checks import CheckResult
from fleetforge.planner import plan_host
from fleetforge.runs.store import ENV, FILE_NAME
from fleetforge.secrets import REDACTED
from fleetforge.settings import settings_from_data
from tests.conftest import facts_from
from tests.probe_edit import fake_inventory, fixture_output, with_file
from tests.runs.conftest import runs_in, store_bytes

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SECRETS = ("SECRET123", "SECRETUSER", "SECRETPLAN")
NIX_CONF = "sandbox = false\naccess-tokens = github.com=SECRET123\nmy-token = SECRETUSER\nmax-jobs = 7\n"


def good_output() -> list[str]:
    return with_file(fixture_output("qemu-virtio-blk-vda-bios"), "/etc/nix/nix.conf", NIX_CONF)


def inventory(tmp_path: Path, *, bad: bool = True, **hosts_data) -> Path:
    """``@fake/good`` (a nix.conf with secrets; ``hosts_data`` for more hosts' data) and
    ``@fake/bad`` (its lsblk JSON broken: the probe fails)."""
    hosts = {"@fake/good": (good_output(), {"secret_keys": ["my-token"]})}
    if bad:
        hosts["@fake/bad"] = ([line.replace("{", "[", 1) for line in good_output()], {})
    for name, data in hosts_data.items():
        hosts[f"@fake/{name}"] = (good_output(), data)
    return fake_inventory(tmp_path / "inventory.py", hosts)


def run(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=180, env=env)


def fleetforge(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    return run(sys.executable, "-m", "fleetforge.cli", *argv, **kwargs)


def test_probe_and_plan_record_each_host(tmp_path):
    inv = str(inventory(tmp_path))
    probe, plan = fleetforge("probe", inv), fleetforge("plan", inv)
    assert probe.returncode == plan.returncode == 1, probe.stderr + plan.stderr  # the bad host
    first, second = runs_in(tmp_path)
    assert (first.command, first.exit_code, second.command, second.exit_code) == ("probe", 1, "plan", 1)
    assert first.inventory == inv and first.ended_at >= first.started_at and not first.dry
    facts = facts_from("qemu-virtio-blk-vda-bios")
    for record in (first, second):
        good, bad = record.hosts
        assert (good.host, good.status, bad.host, bad.status) == ("@fake/good", "ok", "@fake/bad", "failed")
        assert good.hardware.logical_cpus == facts.cpu.logical_cpus and good.hardware.disks[0].name == "vda"
        assert len(good.facts_digest) == 64 and bad.hardware is None and "HostProbe failed" in bad.error
        assert {(p.name, p.host, p.status) for p in record.phases} == {
            ("probe", None, "ok"), ("connect", "@fake/good", "ok"), ("connect", "@fake/bad", "ok"),
        }  # fmt: skip
    assert first.hosts[0].plan is None and second.hosts[0].plan["host"] == "@fake/good"
    assert first.hosts[0].facts_digest == second.hosts[0].facts_digest  # the same facts


def test_flags_and_environment_choose_the_store(tmp_path, monkeypatch, capsys):
    inv = str(inventory(tmp_path, bad=False))
    assert cli.main(["probe", inv, "--no-record"]) == 0
    monkeypatch.setenv(ENV, "off")
    assert cli.main(["probe", inv]) == 0
    assert not (tmp_path / FILE_NAME).exists()
    assert cli.main(["probe", inv, "--record"]) == 0  # a bare --record: on, in the default place
    assert [r.command for r in runs_in(tmp_path)] == ["probe"]
    assert cli.main(["plan", inv, "--record", str(tmp_path / "elsewhere.sqlite")]) == 0
    monkeypatch.setenv(ENV, str(tmp_path / "from-env.sqlite"))
    assert cli.main(["plan", inv, "--no-record"]) == 0
    assert cli.main(["probe", inv]) == 0
    assert [r.command for r in runs_in(tmp_path)] == ["probe"]
    assert [r.command for r in runs_in(tmp_path, "elsewhere.sqlite")] == ["plan"]
    assert [r.command for r in runs_in(tmp_path, "from-env.sqlite")] == ["probe"]
    assert "run record" not in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["probe", inv, "--record", "x", "--no-record"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_a_store_that_cannot_be_written_keeps_the_output_and_exit_code(tmp_path):
    inv = str(inventory(tmp_path))
    (tmp_path / "a-file").write_text("")
    normal = fleetforge("probe", inv, "--json", "--no-record")
    broken = fleetforge("probe", inv, "--json", "--record", str(tmp_path / "a-file" / "runs.sqlite"))
    assert normal.returncode == broken.returncode == 1
    assert json.loads(broken.stdout) == json.loads(normal.stdout)
    warnings = [line for line in broken.stderr.splitlines() if "run record" in line]
    assert len(warnings) == 1 and warnings[0].startswith("fleetforge: run record not written: ")
    assert "run record" not in normal.stderr


def test_no_secret_reaches_the_store(tmp_path):
    inv = str(inventory(tmp_path, bad=False, plan={"nix_settings": {"access-tokens": "github.com=SECRETPLAN"}}))
    for out in (
        fleetforge("plan", inv),
        fleetforge("probe", inv, "--json"),
        run(str(BIN / "pyinfra"), "-y", inv, "deploys/vps.py"),
    ):
        assert out.returncode == 0, out.stderr[-3000:]
    plan, probe, deploy = runs_in(tmp_path)
    assert deploy.command == "deploy" and deploy.hosts[1].status == "changed"
    for record in (plan, deploy):  # the plans are stored, with the secret setting masked
        stored = record.hosts[1].plan["nix"]["settings"]["access-tokens"]
        assert record.hosts[1].host == "@fake/plan" and stored["value"] == REDACTED
    data = store_bytes(tmp_path)
    assert b"max-jobs" in data  # the plans are in these bytes...
    leaked = [s for s in SECRETS if s.encode() in data]
    assert not leaked, leaked  # ...their secrets are not


def test_a_pyinfra_deploy_records_changes_failures_and_unreachable_hosts(tmp_path):
    inv = inventory(tmp_path)
    text = inv.read_text().rstrip().removesuffix("]")
    ssh = {"ssh_port": 1, "ssh_connect_timeout": 5, "ssh_user": "nobody"}  # a refused port on loopback
    inv.write_text(f"{text}    ('127.0.0.1', {ssh!r}),\n]\n")
    out = run(str(BIN / "pyinfra"), "-y", "--fail-percent", "100", str(inv), "deploys/vps.py")
    assert out.returncode == 1, out.stderr[-3000:]
    (record,) = runs_in(tmp_path)
    assert (record.command, record.target, record.dry, record.exit_code) == ("deploy", "deploys/vps.py", False, 1)
    assert record.inventory == str(inv)
    hosts = {h.host: h for h in record.hosts}
    good, bad, down = hosts["@fake/good"], hosts["@fake/bad"], hosts["127.0.0.1"]
    assert good.status == "changed" and good.error is None and good.plan["host"] == "@fake/good"
    operation = "fleetforge: tune VPS | Tuning files and follow-ups"
    assert f"{operation}: sysctl settings" in good.changed and all(c.startswith(operation) for c in good.changed)
    assert good.hardware.kernel == facts_from("qemu-virtio-blk-vda-bios").kernel_release
    assert bad.status == "failed" and bad.error.startswith("failed before its operations ran")
    assert down.status == "unreachable" and down.hardware is None
    phases = {(p.name, p.host): p for p in record.phases}
    assert set(phases) == {
        ("connect", "@fake/good"), ("connect", "@fake/bad"), ("connect", "127.0.0.1"),
        ("plan", "@fake/good"), ("plan", "@fake/bad"), ("deploy", "@fake/good"),
    }  # fmt: skip
    assert phases[("connect", "127.0.0.1")].status == "failed" and phases[("plan", "@fake/bad")].status == "failed"
    assert phases[("connect", "@fake/good")].ended_at <= phases[("plan", "@fake/good")].started_at
    assert phases[("plan", "@fake/good")].ended_at <= phases[("deploy", "@fake/good")].started_at
    assert record.started_at <= phases[("deploy", "@fake/good")].ended_at <= record.ended_at


def test_a_dry_deploy_records_what_would_change(tmp_path):
    inv = inventory(tmp_path, bad=False)
    out = run(str(BIN / "pyinfra"), "--dry", str(inv), "deploys/vps.py")
    assert out.returncode == 0, out.stderr[-3000:]
    (record,) = runs_in(tmp_path)
    (good,) = record.hosts
    assert record.dry and record.exit_code == 0 and good.status == "ok"
    assert "fleetforge: tune VPS | Tuning files and follow-ups: sysctl settings" in good.changed
    assert {p.name for p in record.phases} == {"connect", "plan"}  # nothing executed


def test_a_deploy_that_raises_for_one_host_names_it_and_skips_the_others(tmp_path):
    inv = inventory(tmp_path, bad=False, huge={"zram_size": "100G"})
    out = run(str(BIN / "pyinfra"), "-y", str(inv), "deploys/vps.py")
    assert out.returncode == 1
    (record,) = runs_in(tmp_path)
    hosts = {h.host: h for h in record.hosts}
    assert record.exit_code == 1 and hosts["@fake/good"].status == "skipped"  # nothing was executed
    huge = hosts["@fake/huge"]
    assert huge.status == "failed" and huge.error.startswith("PlanError: ") and "zram_size" in huge.error
    assert huge.hardware is not None and huge.plan is None  # probed, not planned
    assert not [p for p in record.phases if p.name == "deploy"]


# ---------------------------------------------------------------- verify, tune, rollout in-process


def plain_inventory(tmp_path: Path, text: str) -> str:
    path = tmp_path / "inventory.py"
    path.write_text(text)
    return str(path)


def test_verify_records_each_hosts_checks_status_and_plan(tmp_path, monkeypatch):
    inv = plain_inventory(tmp_path, "hosts = ['ok-1', 'warn-1', 'fail-1', 'down-1', 'badplan-1']\n")
    facts = facts_from("qemu-virtio-blk-vda-bios")
    plan = plan_host("fail-1", facts, settings_from_data("fail-1", {"nix_settings": {"access-tokens": "SECRETPLAN"}}))

    def fake_verify(name, data, settings, extra=None, nixos_extra=None):
        time.sleep(0.01)
        ok = CheckResult(name, "sysctl vm.swappiness", "10", "10", "ok")
        if name == "down-1":
            return fv.Verified(None, [fv.unreachable(name, ConnectionRefusedError(111, "Connection refused"))])
        if name == "badplan-1":
            return fv.Verified(None, [fv.unreachable(name, ValueError("host badplan-1: ssh_port: not a port"))])
        if name == "warn-1":
            return fv.Verified(plan, [ok, CheckResult(name, "nix cores", "1", None, "warn")], facts)
        if name == "fail-1":
            secret = CheckResult(name, "nix access-tokens", "SECRETPLAN", "SECRETUSER", "fail")
            return fv.Verified(plan, [ok, secret], facts)
        return fv.Verified(plan, [ok], facts)

    monkeypatch.setattr(fv, "verify_host", fake_verify)
    assert cli.main(["verify", inv, "--record"]) == 1
    (record,) = runs_in(tmp_path)
    assert record.command == "verify" and record.exit_code == 1
    hosts = {h.host: h for h in record.hosts}
    assert {n: h.status for n, h in hosts.items()} == {
        "ok-1": "ok", "warn-1": "warn", "fail-1": "failed", "down-1": "unreachable", "badplan-1": "failed",
    }  # fmt: skip
    assert [(c.item, c.severity) for c in hosts["warn-1"].checks] == [
        ("sysctl vm.swappiness", "ok"),
        ("nix cores", "warn"),
    ]
    secret = hosts["fail-1"].checks[1]
    assert (secret.expected, secret.actual) == (REDACTED, REDACTED)
    assert hosts["fail-1"].error == "1 check(s) failed: nix access-tokens"
    assert hosts["fail-1"].plan["nix"]["settings"]["access-tokens"]["value"] == REDACTED
    assert hosts["down-1"].error.startswith("ConnectionRefusedError") and hosts["down-1"].plan is None
    assert hosts["ok-1"].hardware.logical_cpus == facts.cpu.logical_cpus
    assert {(p.name, p.host, p.status) for p in record.phases} == {
        ("verify", "ok-1", "ok"), ("verify", "warn-1", "ok"), ("verify", "fail-1", "failed"),
        ("verify", "down-1", "failed"), ("verify", "badplan-1", "failed"),
    }  # fmt: skip
    assert not [s for s in SECRETS if s.encode() in store_bytes(tmp_path)]


def test_tune_records_each_host_and_its_measure_phase(tmp_path, monkeypatch):
    from fleetforge.measure import cli as tune

    def measure(h, options):
        time.sleep(0.2)
        return f"{h.name}: not measured: boom\nstderr line" if h.name == "b-1" else None

    monkeypatch.setattr(tune, "_measure_one", measure)
    inv = plain_inventory(
        tmp_path, "hosts = [('a-1', {'hardware_group': 'r7'}), ('a-2', {'hardware_group': 'r7'}), 'b-1']\n"
    )
    assert cli.main(["tune", inv, "--measure", "--repeats", "4"]) == 1
    assert cli.main(["tune", inv, "--no-record"]) == 3  # nothing to do, and not recorded
    (record,) = runs_in(tmp_path)
    assert (record.command, record.target, record.exit_code) == ("tune", "--measure", 1)
    hosts = {h.host: (h.status, h.error) for h in record.hosts}
    assert hosts == {"a-1": ("ok", None), "a-2": ("ok", None), "b-1": ("failed", "b-1: not measured: boom")}
    phases = {p.host: p for p in record.phases}
    assert all(p.name == "measure" and p.seconds >= 0.2 for p in phases.values())
    a1, a2 = phases["a-1"], phases["a-2"]
    assert a1.ended_at <= a2.started_at or a2.ended_at <= a1.started_at  # one hardware group: one at a time
    assert phases["b-1"].status == "failed"


def rollout_steps(monkeypatch, facts):
    """The rollout's host steps replaced (as tests/test_rollout.py does): ``c`` fails its
    verification, so wave1's gate fails and both its hosts are rolled back; wave2 never runs."""
    from fleetforge import rollout as ro
    from tests.test_rollout import snap

    pre = snap()
    pre.facts = facts
    post = snap(sysctl={"vm.swappiness": "133", "net.ipv4.tcp_rmem": "4096 131072 6291456"})
    results = {n: [CheckResult(n, "sysctl vm.swappiness", "133", "60" if n == "c" else "133",
                               "fail" if n == "c" else "ok")] for n in "abcd"}  # fmt: skip

    def step(seconds, value):
        def run(self, *args):
            time.sleep(seconds)
            return value(*args)

        return run

    monkeypatch.setattr(ro.Rollout, "_pre", step(0.02, lambda n: (n, pre, 0.02)))
    monkeypatch.setattr(ro.Rollout, "_post", step(0.02, lambda n: (n, post, results[n], 0.02)))
    monkeypatch.setattr(ro.Rollout, "_health", step(0.01, lambda n: (n, [], 0.01)))
    monkeypatch.setattr(
        ro.Rollout, "_rollback", step(0.01, lambda n, a, b: {"rolled_back": True, "verified": True, "seconds": 0.01})
    )

    def deploy(inventory, deploy_file, hosts, timeout, facts=None):
        time.sleep(0.05)
        return ro.DeployResult(
            0, {}, {h: ["fleetforge: tune VPS | Tuning files and follow-ups"] for h in hosts}, [], 0.05
        )

    monkeypatch.setattr(ro, "run_deploy", deploy)


def test_rollout_records_hosts_and_phases_per_wave(tmp_path, monkeypatch):
    rollout_steps(monkeypatch, facts_from("qemu-virtio-blk-vda-bios"))
    inv = plain_inventory(tmp_path, "canary = ['a']\nwave1 = ['b', 'c']\nwave2 = ['d']\n")
    code = cli.main(["rollout", inv, "deploys/vps.py", "--json", "--record", str(tmp_path / "rollout.json")])
    assert code == 1 and json.loads((tmp_path / "rollout.json").read_text())["exit_code"] == 1
    assert cli.main(["rollout", inv, "deploys/vps.py", "--json", "--record", str(tmp_path / "r2.json"),
                     "--no-run-store"]) == 1  # fmt: skip
    (record,) = runs_in(tmp_path)
    assert (record.command, record.target, record.exit_code, record.waves) == (
        "rollout", "deploys/vps.py", 1, ["canary", "wave1", "wave2"],
    )  # fmt: skip
    hosts = {h.host: h for h in record.hosts}
    assert {n: (h.status, h.wave) for n, h in hosts.items()} == {
        "a": ("changed", 0), "b": ("warn", 1), "c": ("failed", 1), "d": ("skipped", 2),
    }  # fmt: skip
    assert hosts["a"].changed == ["fleetforge: tune VPS | Tuning files and follow-ups"]
    assert hosts["a"].hardware.disks[0].name == "vda" and len(hosts["a"].facts_digest) == 64
    assert hosts["c"].error.startswith("verification failed: FAIL c: sysctl vm.swappiness")
    assert [(x.item, x.actual, x.severity) for x in hosts["c"].checks] == [("sysctl vm.swappiness", "60", "fail")]
    assert "rolled back because the wave's gate failed" in hosts["b"].warnings
    by_host: dict[str, list] = {}
    for p in record.phases:
        by_host.setdefault(p.host, []).append(p)
    assert [(p.name, p.wave, p.status) for p in by_host["a"]] == [
        ("snapshot", 0, "ok"), ("deploy", 0, "ok"), ("verify", 0, "ok"), ("health", 0, "ok"),
    ]  # fmt: skip
    assert [(p.name, p.wave, p.status) for p in by_host["c"]] == [
        ("snapshot", 1, "ok"), ("deploy", 1, "ok"), ("verify", 1, "failed"), ("health", 1, "ok"),
        ("rollback", 1, "ok"),
    ]  # fmt: skip
    assert "d" not in by_host
    for phases in by_host.values():  # real times, in order
        assert all(a.ended_at <= b.started_at for a, b in zip(phases, phases[1:], strict=False)), phases
    assert by_host["a"][1].seconds >= 0.05 and by_host["a"][-1].ended_at <= by_host["b"][0].started_at


def test_rollout_dry_records_each_hosts_plan_and_wave(tmp_path):
    entry = ("@fake/good", {"fake_delay": 0, "fake_responses": {"fleetforge-probe": good_output()}})
    inv = plain_inventory(tmp_path, f"canary = [{entry!r}]\n")
    out = fleetforge("rollout", inv, "deploys/vps.py", "--dry")
    assert out.returncode == 0, out.stderr
    (record,) = runs_in(tmp_path)
    assert record.dry and record.exit_code == 0 and record.waves == ["canary"]
    (good,) = record.hosts
    assert (good.status, good.wave, good.plan["host"]) == ("ok", 0, "@fake/good")


@pytest.mark.parametrize("argv", [["probe"], ["verify"]])
def test_bad_input_is_recorded_with_exit_code_3(tmp_path, argv):
    inv = plain_inventory(tmp_path, "hosts = [('a', {'zram_size': 'lots'})]\n")
    assert cli.main([*argv, inv]) == 3
    (record,) = runs_in(tmp_path)
    assert record.command == argv[0] and record.exit_code == 3 and record.hosts == []
