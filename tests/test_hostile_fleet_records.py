"""Hostile input against the OVH inventory, the run store and the fleet report.

Each test stands for a hole found in review and fails without its fix:

- OVH answers (through the real ``ovh`` client and the local stand-in): an IPv6 scope carrying
  escape codes or shell text; bidi and line-separator characters in a state; hardware sizes that
  are not finite or overflow; model numbers past any machine; JSON nested deeper than Python
  decodes; a secret echoed in an error message at the cut; a cache file of the wrong shape.
- Credentials' ``repr``.
- The run store: a symbolic link or another user's file where the store goes; a row nested too
  deep; times that overflow once moved to UTC; a ``SettingsError`` quoting a secret value.
- Records and the report: numbers too long for a float or for JSON; a rollout spanning centuries.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import stat
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest

from fleetforge import ovh
from fleetforge.ovh.api import resolve_credentials
from fleetforge.ovh.cache import cache_path
from fleetforge.ovh.hardware import OvhModel, model_mismatches
from fleetforge.report.fleet import fleet_view
from fleetforge.report.html import render_fleet
from fleetforge.report.svg import elapsed_axis, timeline
from fleetforge.runs import store as st
from fleetforge.runs.commands import probe_record
from fleetforge.runs.models import Hardware, HostRecord, Phase, RunRecord
from fleetforge.runs.record import RunRecorder, error_of
from fleetforge.settings import SettingsError, settings_from_data
from fleetforge.testbed import ovh_api
from fleetforge.testbed.ovh_api import OvhApiStandIn, StandInAccount
from tests.conftest import facts_from
from tests.ovh.helpers import SECRETS, SERVER, VPS_1, fleet_of, names

T0 = dt.datetime(2026, 5, 4, 9, 0, tzinfo=dt.UTC)
VPS_X = "vps-0badc0de.vps.ovh.net"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ``OVH_*`` variable of the person running the tests, a cache of this test's own, and no
    run store from the environment."""
    for name in ("ENDPOINT", "APPLICATION_KEY", "APPLICATION_SECRET", "CONSUMER_KEY", "CLIENT_ID", "CLIENT_SECRET"):
        monkeypatch.delenv(f"OVH_{name}", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(st.ENV, raising=False)


def good_vps(name: str = VPS_1, **kwargs) -> dict:
    return ovh_api.vps(name, ips=kwargs.pop("ips", ["203.0.113.11"]), **kwargs)


def serve(*, vps: dict | None = None, dedicated: dict | None = None) -> OvhApiStandIn:
    return OvhApiStandIn(StandInAccount(vps=vps or {}, dedicated=dedicated or {}))


def assert_one_clean_line(text: str) -> None:
    """Each line printable: no escape, no bidi override, no line separator."""
    for line in text.splitlines():
        assert line.isprintable(), repr(line)


# ---------------------------------------------------------------------------------------- OVH


@pytest.mark.parametrize(
    "address",
    [
        "::1%\x1b]0;pwned\x07\x1b[2J",  # a loopback with a scope: the refusal printed the scope raw
        "2001:db8::1%$(reboot)",  # a public address with a scope of shell text: it was accepted
        "2001:db8::1%\u202eevil",
    ],
    ids=["loopback-escape-codes", "shell-text", "bidi"],
)
def test_an_ipv6_scope_from_the_api_is_no_address(address, capsys):
    with serve(vps={VPS_X: good_vps(VPS_X, ips=[address]), VPS_1: good_vps()}) as api:
        fleet = fleet_of(api)
    assert names(fleet.all) == [VPS_1]
    (reason,) = [why for name, why in fleet.skipped if name == VPS_X]
    assert reason.endswith("from the API is not an IP address")
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err and "\u202e" not in err
    assert_one_clean_line(err)


@pytest.mark.parametrize(
    "state",
    ["stopped\u202e", "stopped\u2028fleetforge ovh: all good", "stopped\u200b\u2066"],
    ids=["bidi-override", "line-separator", "zero-width-isolate"],
)
def test_unprintable_characters_in_a_state_are_escaped_on_stderr(state, capsys):
    with serve(vps={VPS_X: good_vps(VPS_X, state=state), VPS_1: good_vps()}) as api:
        fleet = fleet_of(api)
    assert names(fleet.all) == [VPS_1]
    err = capsys.readouterr().err
    assert f"skipped {VPS_X}: state " in err
    for ch in "\u202e\u2028\u200b\u2066":
        assert ch not in err
    assert_one_clean_line(err)


@pytest.mark.parametrize(
    "memory",
    [
        {"unit": "MB", "value": float("inf")},  # JSON Infinity
        {"unit": "MB", "value": float("nan")},  # JSON NaN
        {"unit": "TB", "value": 1e308},  # finite, but not once made MB
    ],
    ids=["infinity", "nan", "overflows"],
)
def test_hardware_sizes_that_are_not_finite_leave_the_model_out(memory):
    hardware = ovh_api.hardware_spec()
    hardware["memorySize"] = memory
    with serve(dedicated={SERVER: ovh_api.dedicated(SERVER, hardware=hardware)}) as api:
        fleet = fleet_of(api)  # raised OverflowError / ValueError
    (entry,) = fleet.all[0]
    assert entry[0] == SERVER and "ovh_model" not in entry[1]


def test_model_numbers_past_any_machine_refuse_the_host():
    huge = ovh_api.vps(VPS_X, memory_mb=10**400, ips=["203.0.113.12"])
    with serve(vps={VPS_X: huge, VPS_1: good_vps()}) as api:
        fleet = fleet_of(api)
    assert names(fleet.all) == [VPS_1]
    (reason,) = [why for name, why in fleet.skipped if name == VPS_X]
    assert "memory_mib is not valid" in reason
    with pytest.raises(SettingsError, match="ovh_model.memory_mib"):  # host data, typed by hand
        settings_from_data("h", {"ovh_model": {"name": "m", "vcores": 2, "memory_mib": 10**30, "disk_gb": 80}})


def test_hardware_a_host_reports_past_a_float_is_still_compared():
    facts = facts_from("qemu-virtio-blk-vda-bios")
    model = OvhModel(name="vps-1", vcores=facts.cpu.logical_cpus, memory_mib=2048, disk_gb=20)
    huge = facts.model_copy(
        update={
            "memory": facts.memory.model_copy(update={"mem_total_bytes": 10**400}),
            "disks": [facts.disks[0].model_copy(update={"size_bytes": 10**400})],
        }
    )
    ram, disk = model_mismatches(huge, model)  # raised OverflowError: verify and plan stopped
    assert ram.startswith("RAM over 9.98e+291 GiB detected") and disk.startswith("disk over 9.98e+291 GiB")


def test_json_nested_deeper_than_python_decodes_is_one_ovh_error():
    deep = ovh_api.vps(VPS_X)
    deep["detail"] = b"[" * 100_000 + b"]" * 100_000
    with serve(vps={VPS_X: deep}) as api, pytest.raises(ovh.OvhError) as err:
        fleet_of(api)  # raised RecursionError
    assert err.value.kind == "response" and "unexpected answer (RecursionError)" in str(err.value)


def test_a_secret_echoed_at_the_cut_of_an_error_message_is_still_masked(monkeypatch):
    # the API gets the consumer key with every call; a hostile one may echo it where the
    # message is cut at 160 characters, so the part before the cut was no longer the key
    monkeypatch.setitem(ovh_api._MESSAGES, 500, "x" * 140 + ovh_api.CONSUMER_KEY)
    with serve(vps={VPS_1: good_vps()}) as api:
        api.fail_with(500)
        with pytest.raises(ovh.OvhError) as err:
            fleet_of(api, cache_s=0)
    assert err.value.kind == "server"
    assert ovh_api.CONSUMER_KEY[:8] not in str(err.value)
    assert "***" in str(err.value)


def test_credentials_repr_shows_no_secret():
    creds = resolve_credentials(
        "ovh-eu", ovh_api.APPLICATION_KEY, ovh_api.APPLICATION_SECRET, ovh_api.CONSUMER_KEY, config_file=os.devnull
    )
    for secret in SECRETS:
        assert secret not in repr(creds)
    assert creds.secrets == SECRETS  # still there for the client


@pytest.mark.parametrize(
    "account",
    [
        {"vps": "ab", "dedicated": []},  # list("ab"): records that were strings
        {"vps": 5, "dedicated": []},
        {"vps": [["x"]], "dedicated": []},
        {"vps": {"a": 1}},
        "[" * 100_000 + "]" * 100_000,  # the file: JSON nested too deep
    ],
    ids=["string", "number", "list-record", "object", "too-deep"],
)
def test_a_cache_of_another_shape_is_ignored_not_a_traceback(account):
    with serve(vps={VPS_1: good_vps()}) as api:
        fleet_of(api)
        (path,) = Path(os.environ["XDG_CACHE_HOME"], "fleetforge", "ovh").iterdir()
        assert path == cache_path(api.endpoint, ovh_api.APPLICATION_KEY, ovh_api.CONSUMER_KEY, ("vps", "dedicated"))
        cached = json.loads(path.read_text())
        if isinstance(account, str):
            path.write_text(account)
        else:
            path.write_text(json.dumps({**cached, "account": account}))
        assert stat.S_IMODE(path.stat().st_mode) == 0o600  # still a cache file the reader trusts
        fleet = fleet_of(api)  # raised AttributeError, TypeError or RecursionError
    assert not fleet.cached and names(fleet.all) == [VPS_1]


# ---------------------------------------------------------------------------------- run store


def record(**kwargs) -> RunRecord:
    return RunRecord(command="verify", started_at=T0, user="u", inventory="/srv/inventory.py", **kwargs)


def test_a_store_path_that_is_a_dangling_symlink_creates_nothing(tmp_path):
    target = tmp_path / "elsewhere" / "authorized_keys"
    target.parent.mkdir()
    link = tmp_path / st.FILE_NAME
    link.symlink_to(target)
    with pytest.raises(st.RunStoreError, match="symbolic link"):
        st.RunStore(link)
    assert not target.exists()  # was created, then made a SQLite database


def test_a_store_path_that_links_to_an_empty_file_leaves_it_alone(tmp_path):
    target = tmp_path / "empty.conf"
    target.write_bytes(b"")
    link = tmp_path / "runs.sqlite"
    link.symlink_to(target)
    with pytest.raises(st.RunStoreError, match="symbolic link"):
        st.RunStore(link)
    assert target.read_bytes() == b""  # was overwritten with a SQLite database


def test_a_symlinked_store_costs_a_warning_not_the_command(tmp_path, capsys):
    link = tmp_path / "runs.sqlite"
    link.symlink_to(tmp_path / "target.sqlite")
    rec = RunRecorder.open("verify", tmp_path / "inventory.py", record=str(link))
    assert rec.store is None and rec.begin().finish(2) == 2
    assert "symbolic link" in capsys.readouterr().err
    assert not (tmp_path / "target.sqlite").exists()


def test_another_users_store_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "runs.sqlite"
    st.RunStore(path).begin(record())
    uid = os.getuid()
    monkeypatch.setattr(st.os, "getuid", lambda: uid + 1)  # the file is now someone else's
    with pytest.raises(st.RunStoreError, match="owned by this user"):
        st.RunStore(path)


def store_with_row(path: Path, **columns) -> st.RunStore:
    """A store holding one run whose ``columns`` were then set as raw SQL text."""
    store = st.RunStore(path)
    run_id = store.begin(record())
    with sqlite3.connect(path) as conn:
        for column, value in columns.items():
            conn.execute(f"UPDATE runs SET {column} = ? WHERE id = ?", (value, run_id))  # test-only, fixed names
    return store


def read_and_render(store: st.RunStore) -> tuple[list[RunRecord], list[str], str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs = store.runs()
    page = render_fleet(fleet_view([], runs), runs, inventory="/srv/inventory.py", generated=T0)
    return runs, [str(w.message) for w in caught if issubclass(w.category, st.RunStoreWarning)], page


def test_a_row_nested_too_deep_is_skipped_with_a_warning(tmp_path):
    store = store_with_row(tmp_path / "runs.sqlite", hosts="[" * 100_000 + "]" * 100_000)
    runs, warned, page = read_and_render(store)  # raised RecursionError: no report at all
    assert runs == [] and len(warned) == 1 and "run 1 skipped" in warned[0]
    assert "no runs recorded yet" in page


@pytest.mark.parametrize(
    "started_at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:00-01:00", "9999-12-31T23:30:00+00:00"]
)
def test_times_that_overflow_in_utc_are_skipped_with_a_warning(tmp_path, started_at):
    store = store_with_row(tmp_path / "runs.sqlite", started_at=started_at, hosts='[{"host": "h", "status": "ok"}]')
    runs, warned, page = read_and_render(store)  # raised OverflowError while drawing
    assert runs == [] and len(warned) == 1
    assert "<!DOCTYPE html>" in page


def test_a_settings_error_on_a_secret_key_is_recorded_without_its_value():
    with pytest.raises(SettingsError) as err:
        settings_from_data("vps-1", {"nix_settings": {"access-tokens": "github.com=ghp_SECRET42 oops\nx"}})
    assert "ghp_SECRET42" not in str(err.value)  # the settings' own message leaves it out (tests/test_settings.py)...
    stored = error_of(err.value)  # ...and what recorded() keeps for the host in the run store masks it anyway
    assert "ghp_SECRET42" not in stored
    quoting = SettingsError([("vps-1", "nix_settings.access-tokens", "expected one line, got 'ghp_SECRET42'")])
    assert "ghp_SECRET42" not in error_of(quoting)
    assert stored.startswith("SettingsError: host vps-1: nix_settings.access-tokens: expected a nix.conf value")
    plain = SettingsError([("vps-1", "zram_size_mib", "expected a number, got 'x'")])
    assert error_of(plain) == "SettingsError: host vps-1: zram_size_mib: expected a number, got 'x'"


def test_a_host_number_too_long_for_json_does_not_fail_the_command():
    facts = facts_from("qemu-virtio-blk-vda-bios")
    facts = facts.model_copy(update={"memory": facts.memory.model_copy(update={"mem_total_bytes": 10**4299 * 1024})})
    host = SimpleNamespace(name="vps-1", data={})
    rec = probe_record(host, facts)  # raised ValueError (int to str limit): fleetforge probe stopped
    assert rec.host == "vps-1" and rec.status == "ok" and rec.facts_digest is None


# -------------------------------------------------------------------------------------- report


def test_sizes_past_a_float_are_drawn():
    hw = Hardware(logical_cpus=2, mem_total_bytes=10**400, disks=[])  # a record holds any int a host gave
    host = HostRecord(host="h", status="ok", hardware=hw)
    run = record(id=1, ended_at=T0 + dt.timedelta(minutes=1), exit_code=0, hosts=[host])
    page = render_fleet(fleet_view([], [run]), [run], inventory="/i", generated=T0)  # raised OverflowError
    assert "e+387 TiB" in page


def test_a_rollout_spanning_years_draws_a_few_grid_lines():
    top, step = elapsed_axis(3.15e11)  # years 1 to 9999: 3.6 million one-day steps before
    assert top / step <= 8
    start, end = dt.datetime(2016, 1, 1, tzinfo=dt.UTC), dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    phase = Phase(name="deploy", host="vps-1", wave=0, started_at=start, ended_at=end)
    run = RunRecord(
        id=1, command="rollout", started_at=start, ended_at=end, user="u", inventory="/i", phases=[phase], waves=["w"]
    )
    svg = timeline(run)
    assert svg.count("<line") < 20  # 3,654 before: one per day
