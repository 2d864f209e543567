"""The round trip: run records written through the real run store (``RunStore.begin`` /
``finish``), read back and drawn by ``fleetforge report``."""

from __future__ import annotations

import argparse
import sqlite3

import pytest

from fleetforge.report import cli
from fleetforge.runs.store import RunStore, default_path
from tests.measure.test_report import parse
from tests.report.records import DRIFT_AT, HOSTILE_HOST, INVENTORY, sample_runs


def report(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="fleetforge")
    cli.add_parser(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(["report", *argv])
    return args.func(args)


def store_sample(path) -> list[int]:
    """Write the sample runs as commands do: ``begin`` with no hosts, ``finish`` when it ends
    (run 8 never ends: its hosts are given to ``begin``). Returns the ids."""
    store, ids = RunStore(path), []
    for run in sample_runs():
        if run.ended_at is None:
            ids.append(store.begin(run.model_copy(update={"id": None})))
            continue
        run_id = store.begin(run.model_copy(update={"id": None, "hosts": [], "phases": [], "ended_at": None}))
        store.finish(run_id, ended_at=run.ended_at, exit_code=run.exit_code, hosts=run.hosts, phases=run.phases)
        ids.append(run_id)
    return ids


@pytest.fixture
def inventory(tmp_path):
    path = tmp_path / "inventory.py"
    path.write_text(f"hosts = {list(INVENTORY)!r}\n")
    return path


def test_runs_written_to_the_store_are_drawn(inventory, tmp_path):
    store = tmp_path / "runs.sqlite"
    assert store_sample(store) == list(range(1, 9))
    out = tmp_path / "fleet.html"
    assert report([str(inventory), "-o", str(out), "--run-store", str(store)]) == 0
    dom = parse(out.read_text())
    assert [c.attrs["data-host"] for c in dom.find_all("article", "card")] == [*INVENTORY, HOSTILE_HOST]
    rows = dom.find_all("table", "runs")[0].find_all("tr")[1:]
    assert [r.attrs["data-run"] for r in rows] == [str(i) for i in range(8, 0, -1)]
    assert rows[0].find_all("td")[-1].text() == "unfinished"  # run 8 began and never finished
    (vps2,) = [c for c in dom.find_all("article", "card") if c.attrs["data-host"] == "vps-2"]
    fails = [m.attrs["data-at"] for m in vps2.find_all("g", "mark") if m.attrs["data-mark"] == "fail"]
    assert fails == [DRIFT_AT.isoformat()]
    (rollout,) = dom.find_all("figure", "rollout")
    assert len(rollout.find_all("g", "phase")) == len(sample_runs()[4].phases)


def test_the_default_store_beside_the_inventory_and_the_environment(inventory, tmp_path, monkeypatch):
    monkeypatch.delenv(cli.ENV_STORE, raising=False)
    store_sample(default_path(inventory))
    out = tmp_path / "fleet.html"
    assert report([str(inventory), "-o", str(out)]) == 0
    assert len(parse(out.read_text()).find_all("table", "runs")[0].find_all("tr")) == 9
    monkeypatch.setenv(cli.ENV_STORE, str(tmp_path / "elsewhere.sqlite"))  # no file there: no runs
    assert report([str(inventory), "-o", str(out)]) == 0
    assert "no runs recorded yet" in out.read_text()
    assert not (tmp_path / "elsewhere.sqlite").exists()


def test_a_file_that_is_no_run_store_is_exit_1(inventory, tmp_path, capsys):
    bad = tmp_path / "runs.sqlite"
    bad.write_text("this is not SQLite" * 100)
    assert report([str(inventory), "-o", str(tmp_path / "f.html"), "--run-store", str(bad)]) == 1
    assert "cannot read the run store" in capsys.readouterr().err
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE runs (x)").connection.commit()
    assert report([str(inventory), "-o", str(tmp_path / "f.html"), "--run-store", str(other)]) == 1


def test_the_report_only_reads_the_store_and_leaves_any_other_file_as_it_was(inventory, tmp_path):
    store = tmp_path / "runs.sqlite"
    store_sample(store)
    before = store.read_bytes()  # (reading a WAL database may add its -shm/-wal files: SQLite's own)
    store.chmod(0o400)  # a store the report may read but not write: still drawn
    assert report([str(inventory), "-o", str(tmp_path / "a.html"), "--run-store", str(store)]) == 0
    assert store.read_bytes() == before
    other = tmp_path / "other.sqlite"  # somebody's own SQLite file passed by mistake
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    conn.close()
    kept = other.read_bytes()
    assert report([str(inventory), "-o", str(tmp_path / "b.html"), "--run-store", str(other)]) == 1
    assert other.read_bytes() == kept and not (tmp_path / "b.html").exists()
