"""The run store (``fleetforge.runs.store``): every model round-trips, the file is private and
versioned, two processes write at once, a bad row is skipped with a warning, ``limit`` keeps the
newest, ``off``/``--no-record`` write nothing, and a killed run stays unfinished."""

import datetime as dt
import json
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fleetforge.runs import store as st
from fleetforge.runs.models import CheckRecord, DiskSummary, Hardware, HostRecord, Phase, RunRecord

REPO = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=dt.UTC)


def full_record(command="rollout", start=T0) -> RunRecord:
    """A run using every field of every model."""
    hardware = Hardware(
        logical_cpus=4, mem_total_bytes=8 << 30, virtualization="kvm", firmware="efi", os="Debian GNU/Linux 12",
        kernel="6.1.0-18-amd64",
        disks=[DiskSummary(name="vda", size_bytes=20 << 30, transport="virtio-blk", rotational=True)],
    )  # fmt: skip
    hosts = [
        HostRecord(
            host="vps-1", status="changed", facts_digest="ab" * 32, hardware=hardware,
            plan={"host": "vps-1", "nix": {"settings": {"cores": {"value": "4"}}}},
            changed=["Tuning files and follow-ups: sysctl settings", "/etc/sysctl.d/60-fleetforge.conf"],
            checks=[CheckRecord(item="sysctl vm.swappiness", expected="10", actual="60", severity="fail"),
                    CheckRecord(item="nix cores", expected="4", actual=None, severity="warn")],
            warnings=["rolled back, state equals the pre-deploy record"], wave=1,
        ),
        HostRecord(host="vps-2", status="unreachable", error="ssh failed: Connection refused", wave=0),
    ]  # fmt: skip
    phases = [
        Phase(name="snapshot", host="vps-1", wave=1, started_at=start, ended_at=start + dt.timedelta(seconds=2)),
        Phase(name="deploy", host="vps-1", wave=1, started_at=start + dt.timedelta(seconds=2), status="failed",
              ended_at=start + dt.timedelta(seconds=9, microseconds=5)),
        Phase(name="probe", started_at=start, ended_at=None, status="unfinished"),
    ]  # fmt: skip
    return RunRecord(
        command=command, started_at=start, ended_at=start + dt.timedelta(minutes=1), user="ops",
        inventory="/srv/fleet/inventory.py", target="deploys/vps.py", exit_code=2, dry=True,
        waves=["canary", "wave1"], hosts=hosts, phases=phases,
    )  # fmt: skip


def test_every_model_round_trips_and_begin_leaves_the_run_unfinished(tmp_path):
    store = st.RunStore(tmp_path / "runs.sqlite")
    record = full_record()
    run_id = store.begin(record)
    (begun,) = store.runs()
    assert begun.id == run_id and begun.exit_code is None  # begin ignores the record's exit code
    assert begun == record.model_copy(update={"id": run_id, "exit_code": None})
    end = T0 + dt.timedelta(minutes=3)
    store.finish(run_id, ended_at=end, exit_code=1, hosts=record.hosts[:1], phases=record.phases[:2])
    (done,) = store.runs()
    assert done == record.model_copy(
        update={"id": run_id, "ended_at": end, "exit_code": 1, "hosts": record.hosts[:1], "phases": record.phases[:2]}
    )
    assert done.hosts[0].hardware.disks[0].transport == "virtio-blk" and done.phases[1].seconds == 7.000005
    assert done.started_at.utcoffset() == dt.timedelta(0)


def test_times_in_other_zones_are_stored_as_utc_and_ordered_by_start(tmp_path):
    store = st.RunStore(tmp_path / "runs.sqlite")
    paris = dt.timezone(dt.timedelta(hours=2))
    later = T0.astimezone(paris) + dt.timedelta(seconds=1)  # 12:00:01+02:00 is after 10:00:00Z
    store.begin(full_record(command="verify", start=later))
    store.begin(full_record(command="probe", start=T0))
    assert [r.command for r in store.runs()] == ["probe", "verify"]
    with sqlite3.connect(tmp_path / "runs.sqlite") as conn:
        texts = [row[0] for row in conn.execute("SELECT started_at FROM runs ORDER BY id")]
    assert texts == ["2024-05-01T10:00:01.123456+00:00", "2024-05-01T10:00:00.123456+00:00"]


def test_the_file_is_private_wal_and_versioned(tmp_path):
    path = tmp_path / "new" / "dir" / "runs.sqlite"
    store = st.RunStore(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    reader = sqlite3.connect(path)  # an open reader keeps the -wal and -shm files in place
    try:
        reader.execute("SELECT count(*) FROM runs").fetchone()
        store.begin(full_record())
        for suffix in ("-wal", "-shm"):
            assert stat.S_IMODE(Path(f"{path}{suffix}").stat().st_mode) == 0o600, suffix
        assert reader.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert reader.execute("SELECT version FROM schema_version").fetchall() == [(st.SCHEMA_VERSION,)]
    finally:
        reader.close()
    st.RunStore(path)  # opening again keeps one version row
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM schema_version").fetchone() == (1,)
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(st.RunStoreError, match="schema version 99 is newer"):
        st.RunStore(path)


def test_a_file_that_is_not_a_store_is_refused(tmp_path):
    path = tmp_path / "inventory.py"
    path.write_text("hosts = ['a']\n" * 100)
    with pytest.raises(st.RunStoreError, match="not a fleetforge run store"):
        st.RunStore(path)
    assert path.read_text() == "hosts = ['a']\n" * 100


def test_a_row_that_does_not_validate_is_skipped_with_a_warning(tmp_path):
    store = st.RunStore(tmp_path / "runs.sqlite")
    good = store.begin(full_record(command="probe"))
    bad_status = store.begin(full_record(command="verify"))
    bad_json = store.begin(full_record(command="plan"))
    with sqlite3.connect(tmp_path / "runs.sqlite") as conn:
        conn.execute(
            "UPDATE runs SET hosts = ? WHERE id = ?", (json.dumps([{"host": "x", "status": "boom"}]), bad_status)
        )
        conn.execute("UPDATE runs SET phases = '[{' WHERE id = ?", (bad_json,))
    with pytest.warns(st.RunStoreWarning) as caught:
        runs = store.runs()
    assert [r.id for r in runs] == [good]
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2
    assert f"run {bad_status} skipped" in messages[0] + messages[1] and f"run {bad_json} skipped" in "".join(messages)


def test_limit_keeps_the_newest_oldest_first_and_command_filters(tmp_path):
    store = st.RunStore(tmp_path / "runs.sqlite")
    for i, command in enumerate(["probe", "verify", "verify", "deploy", "verify"]):
        store.begin(full_record(command=command, start=T0 + dt.timedelta(hours=i)))
    hours = lambda runs: [int((r.started_at - T0).total_seconds() // 3600) for r in runs]  # noqa: E731
    assert hours(store.runs()) == [0, 1, 2, 3, 4]
    assert hours(store.runs(limit=2)) == [3, 4]
    assert hours(store.runs(command="verify")) == [1, 2, 4]
    assert hours(store.runs(command="verify", limit=2)) == [2, 4]
    assert store.runs(limit=0) == [] and store.runs(command="tune") == []


def test_finishing_an_unknown_run_raises(tmp_path):
    store = st.RunStore(tmp_path / "runs.sqlite")
    with pytest.raises(st.RunStoreError, match="no run 7"):
        store.finish(7, ended_at=T0, exit_code=0, hosts=[], phases=[])


WRITER = textwrap.dedent("""
    import datetime as dt, sys
    from fleetforge.runs.models import HostRecord, Phase, RunRecord
    from fleetforge.runs.store import RunStore
    path, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    sys.stdin.read()  # wait for the go
    for i in range(n):
        store = RunStore(path)  # every run opens the store, as each command does
        start = dt.datetime.now(dt.UTC)
        run = store.begin(RunRecord(command="verify", started_at=start, user=tag, inventory="inv.py", target=str(i)))
        store.finish(run, ended_at=dt.datetime.now(dt.UTC), exit_code=i % 3,
                     hosts=[HostRecord(host=f"{tag}-{i}", status="ok")],
                     phases=[Phase(name="verify", host=f"{tag}-{i}", started_at=start)])
""")


def test_two_processes_write_at_once(tmp_path):
    path = tmp_path / "runs.sqlite"  # both create it: neither finds it there first
    n = 40
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), tag, str(n)], stdin=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=REPO)
        for tag in ("a", "b")
    ]  # fmt: skip
    for p in procs:
        p.stdin.close()  # go: both start their writes together
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    runs = st.RunStore(path).runs()
    assert len(runs) == 2 * n and len({r.id for r in runs}) == 2 * n
    for tag in ("a", "b"):
        mine = [r for r in runs if r.user == tag]
        assert [r.target for r in mine] == [str(i) for i in range(n)]
        assert [r.exit_code for r in mine] == [i % 3 for i in range(n)]
        assert [r.hosts[0].host for r in mine] == [f"{tag}-{i}" for i in range(n)]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_killed_run_stays_unfinished(tmp_path):
    code = textwrap.dedent(f"""
        import os, signal
        from fleetforge.runs.record import RunRecorder
        rec = RunRecorder.open("verify", {str(tmp_path / "inventory.py")!r}).begin()
        with rec.phase("verify", host="h"):
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == -signal.SIGKILL
    (run,) = st.RunStore(tmp_path / st.FILE_NAME).runs()
    assert run.command == "verify" and run.exit_code is None and run.ended_at is None and run.hosts == []


def test_where_the_store_is(tmp_path, monkeypatch):
    inventory = tmp_path / "fleet" / "inventory.py"
    inventory.parent.mkdir()
    assert st.default_path(inventory) == tmp_path / "fleet" / "fleetforge-runs.sqlite"
    assert st.default_path("@local") == Path.cwd() / "fleetforge-runs.sqlite"
    monkeypatch.delenv(st.ENV, raising=False)
    assert st.open_store(inventory).path == st.default_path(inventory)
    assert st.open_store(inventory, disabled=True) is None
    assert st.open_store(inventory, record=str(tmp_path / "a.sqlite")).path == tmp_path / "a.sqlite"
    monkeypatch.setenv(st.ENV, str(tmp_path / "env.sqlite"))
    assert st.open_store(inventory).path == tmp_path / "env.sqlite"
    assert st.open_store(inventory, record="").path == tmp_path / "env.sqlite"  # a bare --record
    assert st.open_store(inventory, record=str(tmp_path / "b.sqlite")).path == tmp_path / "b.sqlite"
    monkeypatch.setenv(st.ENV, "OFF")
    assert st.open_store(inventory) is None
    assert st.open_store(inventory, record="").path == st.default_path(inventory)  # explicit: on anyway
    assert st.open_store(inventory, record=str(tmp_path / "c.sqlite")).path == tmp_path / "c.sqlite"
