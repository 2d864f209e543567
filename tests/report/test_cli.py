"""``fleetforge report``: the subcommand as ``fleetforge.cli`` will register it, run on an
inventory file (loaded, never connected to), a run store path and stored measurements; the page
written atomically. Runs come from ``tests.report.records`` through ``read_runs`` where the store
itself is not under test (``test_store.py`` is the round trip through the real store)."""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

import pytest

from fleetforge.measure import results
from fleetforge.report import cli
from tests.measure.test_report import parse, sample_hosts
from tests.report.records import HOSTILE_HOST, INVENTORY, sample_runs


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fleetforge")
    cli.add_parser(p.add_subparsers(dest="command", required=True))
    return p


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    return args.func(args)


@pytest.fixture
def fleet(tmp_path) -> Path:
    """An inventory of the three sample hosts (group ``ovh``); ``vm-blk-1`` has stored
    measurements, ``vps-1`` a measurements file that is not valid."""
    measured = tmp_path / "measured"
    results.save(measured, sample_hosts()[0])  # vm-blk-1's
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "vps-1.json").write_text('{"host": "vps-1"}')
    data = {"vm-blk-1": {"measurements_dir": str(measured)}, "vps-1": {"measurements_dir": str(broken)}}
    hosts = ", ".join(f"({h!r}, {data.get(h, {})!r})" for h in INVENTORY)
    path = tmp_path / "inventory.py"
    path.write_text(f"ovh = ([{hosts}], {{}})\n")
    return path


def test_the_subcommand_and_its_options(fleet):
    args = parser().parse_args(["report", str(fleet), "-o", "f.html", "--run-store", "s.sqlite", "--limit", "vps-1"])
    assert (args.inventory, args.output, args.run_store, args.limit) == (str(fleet), "f.html", "s.sqlite", ["vps-1"])
    assert args.func is cli.cmd_report
    with pytest.raises(SystemExit):
        parser().parse_args(["report", str(fleet)])  # -o is required


def test_an_empty_store_gives_a_page_of_every_inventory_host(fleet, tmp_path, capsys):
    store, out = tmp_path / "none.sqlite", tmp_path / "site" / "fleet.html"
    assert run(["report", str(fleet), "-o", str(out), "--run-store", str(store)]) == 0
    assert not store.exists()  # reading an absent store creates nothing
    dom = parse(out.read_text())
    assert [c.attrs["data-host"] for c in dom.find_all("article", "card")] == list(INVENTORY)
    assert [c.attrs["data-state"] for c in dom.find_all("article", "card")] == ["unverified"] * 3
    assert "groups: ovh" in dom.find_all("article", "card")[0].text()
    assert "no runs recorded yet" in out.read_text()
    assert f"report: {out} (3 hosts, 0 runs)" in capsys.readouterr().out


def test_measured_results_are_embedded_and_an_unreadable_file_is_named(fleet, tmp_path):
    out = tmp_path / "fleet.html"
    assert run(["report", str(fleet), "-o", str(out), "--run-store", str(tmp_path / "none")]) == 0
    dom = parse(out.read_text())
    sections = dom.find_all("section", "host")
    assert [s.attrs["data-host"] for s in sections] == ["vm-blk-1"]
    assert [(c.attrs["data-host"], c.attrs["data-disk"]) for c in dom.find_all("figure", "chart")] == [
        ("vm-blk-1", "vda"),
        ("vm-blk-1", "vdb"),
    ]
    (error,) = [p for p in dom.find_all("p", "error") if p.attrs.get("data-host") == "vps-1"]
    assert "host vps-1: measurements" in error.text()


def test_records_are_drawn_and_the_page_replaces_the_old_one_atomically(fleet, tmp_path, monkeypatch):
    seen: list[Path] = []
    monkeypatch.setattr(cli, "read_runs", lambda path: seen.append(path) or sample_runs())
    out = tmp_path / "fleet.html"
    out.write_text("old page")
    assert run(["report", str(fleet), "-o", str(out), "--run-store", str(tmp_path / "runs.sqlite")]) == 0
    assert seen == [tmp_path / "runs.sqlite"]
    dom = parse(out.read_text())
    assert [c.attrs["data-host"] for c in dom.find_all("article", "card")] == [*INVENTORY, HOSTILE_HOST]
    assert len(dom.find_all("figure", "rollout")) == 1 and len(dom.find_all("table", "runs")[0].find_all("tr")) == 9
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary file left


def test_limit_keeps_the_named_hosts_and_the_runs_that_touch_them(fleet, tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "read_runs", lambda path: sample_runs())
    out = tmp_path / "fleet.html"
    assert run(["report", str(fleet), "-o", str(out), "--run-store", "x", "--limit", "vps-2"]) == 0
    dom = parse(out.read_text())
    assert [c.attrs["data-host"] for c in dom.find_all("article", "card")] == ["vps-2"]
    runs = [r.attrs["data-run"] for r in dom.find_all("table", "runs")[0].find_all("tr")[1:]]
    assert runs == ["7", "6", "5", "4", "3", "2", "1"]  # run 8 verified vps-1 only
    rows = [g.attrs["data-host"] for g in dom.find_all("figure", "rollout")[0].find_all("g", "row")]
    assert rows == ["", "vps-2"]
    assert run(["report", str(fleet), "-o", str(out), "--run-store", "x", "--limit", HOSTILE_HOST]) == 0
    assert [c.attrs["data-host"] for c in parse(out.read_text()).find_all("article", "card")] == [HOSTILE_HOST]


def test_a_page_that_cannot_be_written_is_exit_1_and_the_old_page_stays(fleet, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert run(["report", str(fleet), "-o", str(blocker / "fleet.html"), "--run-store", "x"]) == 1
    assert "fleetforge report: cannot write" in capsys.readouterr().err
    assert blocker.read_text() == "not a directory"


def test_an_unreadable_store_is_exit_1(fleet, tmp_path, monkeypatch, capsys):
    def broken(path):
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(cli, "read_runs", broken)
    out = tmp_path / "fleet.html"
    assert run(["report", str(fleet), "-o", str(out), "--run-store", "s.sqlite"]) == 1
    assert "cannot read the run store s.sqlite" in capsys.readouterr().err and not out.exists()


def test_the_store_path_is_the_option_then_the_environment_then_the_default(fleet, monkeypatch):
    monkeypatch.setenv(cli.ENV_STORE, "/env/runs.sqlite")
    assert cli.store_path(str(fleet), "/given.sqlite") == Path("/given.sqlite")
    assert cli.store_path(str(fleet)) == Path("/env/runs.sqlite")
    monkeypatch.delenv(cli.ENV_STORE)
    from fleetforge.runs import store

    assert cli.store_path(str(fleet)) == Path(store.default_path(str(fleet)))
    assert cli.store_path(str(fleet)) == Path(os.path.dirname(fleet)) / "fleetforge-runs.sqlite"
    monkeypatch.setenv(cli.ENV_STORE, " off ")  # recording off is not "read a file named off"
    assert cli.store_path(str(fleet)) == Path(os.path.dirname(fleet)) / "fleetforge-runs.sqlite"
