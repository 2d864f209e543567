"""Unit tests for ``fleetforge rollout``: waves (groups, serial schedule, order), the failure
budget, pyinfra result parsing, rollback commands, the record's shape, health-check settings."""

import http.server
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fleetforge import rollout as ro
from fleetforge import rollout_wave as rw
from fleetforge.console import make_console
from fleetforge.health import run_health_check
from fleetforge.hoststate import HostSnapshot, diff, rollback_commands
from fleetforge.paths import MANAGED_FILES, SYSCTL_CONF, UDEV_RULES, ZRAM_GENERATOR_CONF
from fleetforge.settings import HealthCheck, SettingsError, settings_from_data

# ---------------------------------------------------------------- waves


def test_hosts_are_ordered_by_name_in_natural_order():
    assert ro.sort_hosts(["vps-10", "vps-2", "db-1", "vps-1"]) == ["db-1", "vps-1", "vps-2", "vps-10"]


def test_group_waves_default_canary_then_numbered_waves_then_rest():
    hosts = {
        "vps-10": ["wave2", "ovh"],
        "vps-2": ["wave1", "ovh"],
        "vps-1": ["canary", "ovh"],
        "vps-3": ["wave1"],
        "vps-4": ["wave10"],
        "vps-5": ["ovh"],
    }
    waves = ro.group_waves(hosts)
    assert waves == [
        ro.Wave("canary", ("vps-1",)),
        ro.Wave("wave1", ("vps-2", "vps-3")),
        ro.Wave("wave2", ("vps-10",)),
        ro.Wave("wave10", ("vps-4",)),
        ro.Wave("rest", ("vps-5",)),
    ]


def test_group_waves_named_groups_first_group_wins():
    hosts = {"a": ["canary", "wave1"], "b": ["wave1"], "c": ["wave2"]}
    assert ro.group_waves(hosts, ["wave2", "canary", "wave1"]) == [
        ro.Wave("wave2", ("c",)),
        ro.Wave("canary", ("a",)),
        ro.Wave("wave1", ("b",)),
    ]


def test_group_waves_errors():
    with pytest.raises(ro.RolloutError, match="no canary or waveN group"):
        ro.group_waves({"a": ["ovh"]})
    with pytest.raises(ro.RolloutError, match="no hosts in group"):
        ro.group_waves({"a": ["canary"]}, ["canary", "wave9"])
    with pytest.raises(ro.RolloutError, match="named twice"):
        ro.group_waves({"a": ["canary"]}, ["canary", "canary"])


def test_parse_serial():
    assert ro.parse_serial("1, 25%,100%") == [1, "25%", "100%"]
    for bad in ("0", "x", "150%", "0%", "-1", ""):
        with pytest.raises(ro.RolloutError, match="--serial"):
            ro.parse_serial(bad)


def test_serial_waves_like_ansible_last_size_repeats():
    names = [f"vps-{i}" for i in range(20, 0, -1)]
    waves = ro.serial_waves(names, ro.parse_serial("1,25%,100%"))
    assert [len(w.hosts) for w in waves] == [1, 5, 14]
    assert [w.name for w in waves] == ["batch1", "batch2", "batch3"]
    assert waves[0].hosts == ("vps-1",) and waves[1].hosts == ("vps-2", "vps-3", "vps-4", "vps-5", "vps-6")
    assert [len(w.hosts) for w in ro.serial_waves([f"h{i}" for i in range(10)], [1, 3])] == [1, 3, 3, 3]
    assert [len(w.hosts) for w in ro.serial_waves(["a", "b", "c"], ["10%"])] == [1, 1, 1]  # at least one
    assert ro.serial_waves([], [1]) == []


# ---------------------------------------------------------------- budget


@pytest.mark.parametrize(
    ("failed", "hosts", "pct", "passes", "allowed"),
    [
        (0, 1, 0, True, 0),
        (1, 1, 0, False, 0),
        (1, 1, 99, False, 0),
        (1, 1, 100, True, 1),
        (1, 4, 25, True, 1),
        (2, 4, 25, False, 1),
        (1, 3, 33, False, 0),  # 33.3 % > 33 %
        (1, 3, 34, True, 1),
        (5, 20, 25, True, 5),
        (6, 20, 25, False, 5),
    ],
)
def test_budget(failed, hosts, pct, passes, allowed):
    assert ro.gate_passes(failed, hosts, pct) is passes
    assert ro.allowed_failures(hosts, pct) == allowed


# ---------------------------------------------------------------- pyinfra results


def test_parse_deploy_reads_pyinfra_json_and_host_errors():
    stdout = json.dumps(
        {
            "plan": [],
            "results": {
                "operations": [
                    {"name": "sysctl settings", "success": ["a"], "error": ["b"], "no_change": []},
                    {"name": "zram", "success": [], "error": [], "no_change": ["a"]},
                ],
                "totals": {},
                "failed_hosts": ["b"],
            },
        }
    )
    stderr = "    [b] \x1b[31mError: executed command failed\x1b[0m\n    [a] Success\n"
    result = ro.parse_deploy(["a", "b"], 1, stdout, stderr, events=[{"event": "recording"}])
    assert result.failed == {"b": "deploy failed: Error: executed command failed"}
    assert result.changed_ops == {"a": ["sysctl settings"], "b": []}
    # JSON wins over the event log; an operation that errored on a host started there and did not
    # finish: it may have changed the host partly, so the record names it
    assert result.source == "pyinfra results" and result.unfinished_ops == {"b": ["sysctl settings"]}


def test_parse_deploy_without_json_fails_every_host_and_knows_nothing_without_events():
    result = ro.parse_deploy(["a", "b"], 1, "", "--> pyinfra error: No hosts remaining!\n")
    assert set(result.failed) == {"a", "b"} and "No hosts remaining" in result.failed["a"]
    assert result.changed_ops == {"a": "unknown", "b": "unknown"} and result.source == "none"


def test_parse_deploy_without_json_reads_the_event_log():
    events = [
        {"event": "recording", "hosts": ["a", "b"]},
        {"event": "start", "host": "a", "op": "files"},
        {"event": "start", "host": "b", "op": "files"},
        {"event": "done", "host": "a", "op": "files", "result": "changed"},
        {"event": "done", "host": "b", "op": "files", "result": "no change"},
        {"event": "start", "host": "a", "op": "apply"},
        {"event": "start", "host": "b", "op": "apply"},
        {"event": "done", "host": "b", "op": "apply", "result": "failed"},
    ]
    stderr = "    [a] Command socket/SSH error: ConnectionError('SSH connection lost',)\n--> pyinfra error: x\n"
    result = ro.parse_deploy(["a", "b"], -1, "", stderr, events)
    assert result.source == "event log"
    assert result.changed_ops == {"a": ["files"], "b": []}
    assert result.unfinished_ops == {"a": ["apply"], "b": ["apply"]}  # killed mid-op / failed: may have changed
    assert "SSH connection lost" in result.failed["a"] and "pyinfra exited -1 without results" in result.failed["b"]


def test_event_log_without_its_start_marker_or_with_a_torn_line(tmp_path):
    log = tmp_path / "events.jsonl"
    assert rw.read_events(str(log)) is None  # no log: nothing known
    log.write_text('{"event": "start", "host": "a", "op": "x"}\n')
    assert rw.read_events(str(log)) is None  # recording never started
    log.write_text('{"event": "recording"}\n{"event": "start", "host": "a", "op": "x"}\n{"event": "do')
    assert rw.read_events(str(log)) == [{"event": "recording"}, {"event": "start", "host": "a", "op": "x"}]


def test_the_wave_command_names_no_host_and_no_limit_pattern():
    argv = rw.wave_argv("inv.py", "deploys/vps.py", "/tmp/fleetforge-wave-x")
    assert argv[1:] == ["-m", "fleetforge.rollout_wave", "/tmp/fleetforge-wave-x", "--"] + [
        "-y", "--json", "--fail-percent", "100", "inv.py", "deploys/vps.py",
    ]  # fmt: skip


# ---------------------------------------------------------------- rollback commands


def snap(**kw) -> HostSnapshot:
    base = dict(
        host="h",
        files=dict.fromkeys(MANAGED_FILES),
        backups=[],
        dirs=["/etc/sysctl.d"],
        checks={"sysctl vm.swappiness": "60", "zram0 swap priority": None},
        sysctl={"vm.swappiness": "60", "net.ipv4.tcp_rmem": "4096 131072 6291456"},
        disks={"vda": {"scheduler": "mq-deadline", "read_ahead_kb": 128}},
        zram_device=False,
        generation=None,
        is_nixos=False,
    )
    base.update(kw)
    return HostSnapshot(**base)


def test_rollback_removes_new_files_restores_backups_and_rewrites_live_values():
    pre = snap(files={**dict.fromkeys(MANAGED_FILES), SYSCTL_CONF: "old"})
    bak = SYSCTL_CONF + ".fleetforge-20260101T000000Z.bak"
    post = snap(
        files={**dict.fromkeys(MANAGED_FILES), SYSCTL_CONF: "new", UDEV_RULES: "r", ZRAM_GENERATOR_CONF: "z"},
        backups=[bak],
        dirs=["/etc/nix", "/etc/sysctl.d", "/etc/udev/rules.d"],
        sysctl={"vm.swappiness": "133", "net.ipv4.tcp_rmem": "4096 87380 134217728"},
        zram_device=True,
    )
    cmds, problems = rollback_commands(pre, post)
    assert problems == []
    assert cmds[:3] == [f"rm -f {UDEV_RULES}", f"mv -f {bak} {SYSCTL_CONF}", f"rm -f {ZRAM_GENERATOR_CONF}"]
    assert cmds[3:5] == ["rmdir /etc/udev/rules.d", "rmdir /etc/nix"]  # created by the deploy, deepest first
    assert "udevadm trigger --subsystem-match=block --action=change" in cmds
    assert f"sysctl -p {SYSCTL_CONF}" in cmds
    assert "systemctl stop dev-zram0.swap systemd-zram-setup@zram0.service || true" in cmds
    assert any("modprobe -r zram" in c for c in cmds)
    assert "sysctl -q -w vm.swappiness=60" in cmds
    assert "sysctl -q -w 'net.ipv4.tcp_rmem=4096 131072 6291456'" in cmds
    assert "echo 128 > /sys/block/vda/queue/read_ahead_kb" in cmds


def test_rollback_without_a_backup_of_a_replaced_file_is_a_problem():
    pre = snap(files={**dict.fromkeys(MANAGED_FILES), SYSCTL_CONF: "old"})
    post = snap(files={**dict.fromkeys(MANAGED_FILES), SYSCTL_CONF: "new"})
    _, problems = rollback_commands(pre, post)
    assert problems == [f"{SYSCTL_CONF} changed but this run left no backup of it"]


def test_rollback_on_nixos_returns_to_the_previous_generation():
    pre = snap(is_nixos=True, generation="system-2-link")
    post = snap(is_nixos=True, generation="system-3-link")
    cmds, _ = rollback_commands(pre, post)
    assert "nixos-rebuild switch --rollback" in cmds and not any(c.startswith("udevadm") for c in cmds)


def test_snapshot_diff():
    assert diff(snap(), snap()) == []
    assert diff(snap(), snap(zram_device=True, sysctl={"vm.swappiness": "133"})) == [
        "sysctl net.ipv4.tcp_rmem: '4096 131072 6291456' -> None",
        "sysctl vm.swappiness: '60' -> '133'",
        "zram_device: False -> True",
    ]


# ---------------------------------------------------------------- record shape


def test_record_shape_and_summary_of_a_stopped_rollout(monkeypatch):
    waves = [ro.Wave("canary", ("a",)), ro.Wave("wave1", ("b", "c")), ro.Wave("wave2", ("d",))]
    targets = {n: ro.Target(n, {}, settings_from_data(n, {})) for n in "abcd"}
    pre = snap()
    post = snap(sysctl={"vm.swappiness": "133", "net.ipv4.tcp_rmem": "4096 131072 6291456"})
    deployed: list[list[str]] = []

    class Result:
        def __init__(self, host, ok):
            self.host, self.ok = host, ok

        def line(self):
            return f"FAIL {self.host}: x"

        severity = property(lambda self: "ok" if self.ok else "fail")

    monkeypatch.setattr(ro.Rollout, "_pre", lambda self, n: (n, pre, 0.1))
    monkeypatch.setattr(ro.Rollout, "_post", lambda self, n: (n, post, [Result(n, n != "c")], 0.2))
    monkeypatch.setattr(ro.Rollout, "_health", lambda self, n: (n, [], 0.0))
    monkeypatch.setattr(
        ro.Rollout, "_rollback", lambda self, n, a, b: {"rolled_back": True, "verified": True, "seconds": 0.5}
    )

    def fake_deploy(inventory, deploy, hosts, timeout, facts=None):
        deployed.append(list(hosts))
        return ro.DeployResult(0, {}, {h: ["op"] for h in hosts}, [], 1.0)

    monkeypatch.setattr(ro, "run_deploy", fake_deploy)
    messages: list[str] = []
    record = ro.Rollout("inv.py", "deploy.py", waves, targets, max_fail_percentage=0, progress=messages.append).run()
    assert deployed == [["a"], ["b", "c"]]  # wave2 never deployed
    assert record["outcome"] == "stopped" and record["exit_code"] == 1 and record["stopped_at_wave"] == "wave1"
    assert set(record) >= {"version", "inventory", "deploy", "started_at", "finished_at", "seconds", "waves"}
    w0, w1, w2 = record["waves"]
    assert (w0["status"], w1["status"], w2["status"]) == ("passed", "failed", "not-run")
    assert w1["gate"] == {
        "failed": 1,
        "hosts": 2,
        "failed_percentage": 50.0,
        "max_fail_percentage": 0,
        "allowed_failures": 0,
        "passed": False,
    }
    assert set(w1["timings_s"]) == {"snapshot", "deploy", "verify", "health", "rollback"}
    c = w1["host_results"]["c"]
    assert c["reasons"] == ["verification failed: FAIL c: x"] and c["status"] == "rolled-back"
    assert w1["host_results"]["b"]["status"] == "rolled-back"  # a failed gate rolls back the whole wave
    assert w0["host_results"]["a"]["status"] == "ok" and "rollback" not in w0["host_results"]["a"]
    assert c["changed"] == ["sysctl vm.swappiness: '60' -> '133'"]
    json.dumps(record)  # JSON-ready
    lines = ro.summary_lines(record)
    assert lines[0].startswith("rollout stopped in")
    assert "  c: rolled-back, verify 0/1, 0 file(s) changed, rollback verified" in lines
    assert "    - verification failed: FAIL c: x" in lines
    assert lines[-1] == "wave 3 wave2: not run; untouched: d"
    assert any("gate FAILED: 1/2 failed (50%)" in m for m in messages)


def test_failures_within_budget_continue_and_roll_back_only_the_failed_host(monkeypatch):
    waves = [ro.Wave("w1", ("a", "b")), ro.Wave("w2", ("c",))]
    targets = {n: ro.Target(n, {}, settings_from_data(n, {})) for n in "abc"}
    monkeypatch.setattr(
        ro.Rollout, "_pre", lambda self, n: (n, "SSHError: refused", 0.1) if n == "b" else (n, snap(), 0.1)
    )
    monkeypatch.setattr(ro.Rollout, "_post", lambda self, n: (n, snap(), [], 0.2))
    monkeypatch.setattr(ro.Rollout, "_health", lambda self, n: (n, [], 0.0))
    monkeypatch.setattr(ro, "run_deploy", lambda i, d, hosts, t, facts=None: ro.DeployResult(0, {}, {}, [], 1.0))
    record = ro.Rollout("inv.py", "d.py", waves, targets, max_fail_percentage=50).run()
    assert record["outcome"] == "completed-with-failures" and record["exit_code"] == 2
    assert [w["status"] for w in record["waves"]] == ["passed", "passed"]
    b = record["waves"][0]["host_results"]["b"]
    assert b["status"] == "failed" and b["reasons"] == ["unreachable before the deploy: SSHError: refused"]


def test_record_is_written_atomically(tmp_path):
    path = tmp_path / "runs" / "r.json"
    ro.write_record({"a": 1}, str(path))
    assert json.loads(path.read_text()) == {"a": 1}
    assert ro.default_record_path().startswith("runs/rollout-")


# ---------------------------------------------------------------- health checks


def test_health_check_settings_are_validated():
    s = settings_from_data("h", {"health_checks": [{"http": "http://10.0.0.1/health", "retries": 0}]})
    assert s.health_checks[0].describe() == "http http://10.0.0.1/health"
    with pytest.raises(SettingsError, match="health_checks.0: expected exactly one of command, http"):
        settings_from_data("h", {"health_checks": [{"command": "true", "ssh_reconnect": True}]})
    with pytest.raises(SettingsError, match="health_checks.0.timeout_s"):
        settings_from_data("h", {"health_checks": [{"command": "true", "timeout_s": 0}]})


@pytest.fixture
def http_server():
    statuses: list[int] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            if self.path == "/slow":
                time.sleep(2)
            self.send_response(statuses.pop(0) if statuses else 200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/health", statuses
    server.shutdown()


def test_http_health_check_retries_until_2xx(http_server):
    url, statuses = http_server
    statuses.extend([503, 500])
    result = run_health_check("h", {}, HealthCheck(http=url, retries=3, delay_s=0), sleep=lambda s: None)
    assert (result.ok, result.attempts, result.reason) == (True, 3, "HTTP 200")
    statuses.extend([500, 500])
    result = run_health_check("h", {}, HealthCheck(http=url, retries=1, delay_s=0), sleep=lambda s: None)
    assert (result.ok, result.attempts, result.reason) == (False, 2, "HTTP 500")


def test_http_health_check_refused():
    result = run_health_check("h", {}, HealthCheck(http="http://127.0.0.1:9/", retries=0))
    assert not result.ok and "refused" in result.reason.lower()


def test_http_health_check_timeout(http_server):
    url, _ = http_server
    check = HealthCheck(http=url.replace("/health", "/slow"), retries=0, timeout_s=0.3)
    result = run_health_check("h", {}, check)
    assert (result.ok, result.reason) == (False, "timed out after 0.3 s") and result.elapsed_s < 1.5


# ---------------------------------------------------------------- CLI: bad input before any host is contacted


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--waves", "canary,wave9"], "fleetforge: no hosts in group(s) wave9 (inventory groups: "),
        (
            ["--serial", "1,lots"],
            "fleetforge: --serial: expected a host count >= 1 or a percentage in (0, 100], got 'lots'",
        ),
        (["--max-fail-percentage", "150"], "fleetforge: --max-fail-percentage: expected 0 to 100, got 150"),
        ([], "fleetforge: the inventory has no canary or waveN group"),
    ],
)
def test_cli_bad_input_exits_3_before_contacting_hosts(tmp_path, args, message):
    inventory = tmp_path / "inventory.py"
    groups = "canary = [('h1', {'ssh_port': 1})]\n" if args else "ovh = ['h1']\n"
    inventory.write_text(groups)
    out = subprocess.run(
        [sys.executable, "-m", "fleetforge.cli", "rollout", str(inventory), "deploys/vps.py", *args],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 3, out.stderr
    assert out.stderr.startswith(message), out.stderr


def test_a_host_lost_after_its_deploy_cannot_be_rolled_back_and_fails_the_run(monkeypatch):
    waves = [ro.Wave("w1", ("a", "b"))]
    targets = {n: ro.Target(n, {}, settings_from_data(n, {})) for n in "ab"}
    monkeypatch.setattr(ro.Rollout, "_pre", lambda self, n: (n, snap(), 0.1))
    monkeypatch.setattr(
        ro.Rollout,
        "_post",
        lambda self, n: (n, "HostUnreachable: ssh failed", [], 0.2) if n == "b" else (n, snap(), [], 0.2),
    )
    monkeypatch.setattr(ro.Rollout, "_health", lambda self, n: (n, [], 0.0))
    monkeypatch.setattr(
        ro, "run_deploy", lambda i, d, hosts, t, facts=None: ro.DeployResult(-1, {"b": "deploy failed: x"}, {}, [], 1.0)
    )
    record = ro.Rollout("inv.py", "d.py", waves, targets, max_fail_percentage=50).run()
    b = record["waves"][0]["host_results"]["b"]
    assert b["reasons"] == ["deploy failed: x", "unreachable after the deploy: HostUnreachable: ssh failed"]
    assert b["rollback"] == {"rolled_back": False, "error": "host unreachable after the deploy"}
    assert b["status"] == "not-rolled-back" and b["operations_changed"] == "unknown"
    assert record["waves"][0]["status"] == "passed" and record["exit_code"] == 1
    lines = ro.summary_lines(record)
    assert (
        "  b: not-rolled-back, operations changed: unknown, ROLLBACK NOT RUN: host unreachable after the deploy"
        in lines
    )
    assert lines[-1] == (
        "NOT ROLLED BACK, state unknown, check by hand: b (rollback not run: host unreachable after the deploy)"
    )


def test_host_names_and_reasons_print_as_text_not_markup(capsys):
    """A host name or reason holding rich markup or an emoji code prints literally."""
    host = {"status": "failed", "reasons": ["os-release: Debian [/oops] 12 [bold]x :fire:"], "timings_s": {}}
    record = {
        "outcome": "stopped", "seconds": 1, "max_fail_percentage": 0, "exit_code": 1,
        "waves": [{"index": 1, "name": "canary", "status": "failed", "seconds": 1,
                   "gate": {"passed": False, "failed": 1, "hosts": 1}, "host_results": {"web[/x]": host}}],
    }  # fmt: skip
    console = make_console()  # what ``fleetforge rollout`` prints its summary on
    for line in ro.summary_lines(record):
        console.print(line)
    out = capsys.readouterr().out
    assert "  web[/x]: failed\n" in out
    assert "    - os-release: Debian [/oops] 12 [bold]x :fire:\n" in out
