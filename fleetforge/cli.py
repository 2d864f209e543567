"""``fleetforge``: plan, verify and the local test hosts.

    fleetforge probe INVENTORY [--limit NAME ...] [--parallel N] [--json] [--record [PATH] | --no-record]
    fleetforge plan INVENTORY [--limit NAME ...] [--json] [--record [PATH] | --no-record]
    fleetforge verify INVENTORY [--limit NAME ...] [--json] [--record [PATH] | --no-record]
    fleetforge disko INVENTORY [--limit NAME ...] [--json]
    fleetforge bundle fetch MANIFEST [--dir DIR] [--parallel N]
    fleetforge bundle status INVENTORY [--bundle DIR] [--limit NAME ...] [--json]
    fleetforge tune INVENTORY --measure [--limit NAME ...] [--budget-s N] [--report out.html]
    fleetforge rollout INVENTORY DEPLOY [--waves G,G | --serial 1,25%,100%] [--max-fail-percentage N] [--dry]
    fleetforge testbed up|down|status|reset|build ...

Exit codes: 0 ok; 1 a check failed or a host could not be reached; 2 only warnings (verify);
3 bad input (inventory or host data), reported before any host is contacted.
"""

from gevent import monkey

monkey.patch_all()  # before anything imports ssl/socket, as pyinfra's CLI does

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from rich.text import Text  # noqa: E402

from fleetforge.console import make_console  # noqa: E402
from fleetforge.errors import FleetforgeError  # noqa: E402
from fleetforge.models import HostFacts  # noqa: E402
from fleetforge.plan_table import plan_table  # noqa: E402
from fleetforge.runs.record import add_record_arguments  # noqa: E402
from fleetforge.secrets import redact_facts, redact_plan, secret_keys  # noqa: E402

EXIT_BAD_INPUT = 3


def _console() -> Console:
    """Text from hosts is printed as text (``fleetforge.console``): never as markup; a terminal
    uses its own width, a pipe or file gets 160 columns rather than rich's 80."""
    return make_console()


def _red(text: str) -> Text:
    """``text`` in red, literally (a host's ``[/x]`` is not markup)."""
    return Text(text, style="red")


def _facts_table(name: str, facts: HostFacts) -> Table:
    table = Table(title=f"{name}: detected", show_header=False, title_justify="left")
    cpu, mem = facts.cpu, facts.memory
    table.add_row("os", f"{facts.os.pretty_name or facts.os.id} (kernel {facts.kernel_release})")
    table.add_row("virtualization / firmware", f"{facts.virtualization} / {facts.firmware}")
    table.add_row("cpu", f"{cpu.logical_cpus} x {cpu.model_name}")
    table.add_row("memory", f"{mem.mem_total_bytes // 1048576} MiB, swap: {[s.path for s in mem.swap_devices]}")
    for d in facts.disks:
        table.add_row(
            f"disk {d.name}",
            f"{d.size_bytes / 2**30:.1f} GiB {d.transport} rotational={int(d.rotational)} "
            f"scheduler={d.scheduler} ({' '.join(d.schedulers_available)}) read_ahead_kb={d.read_ahead_kb} "
            f"by-id={d.by_id_path}",
        )
    table.add_row("nix", f"{facts.nix.version}" if facts.nix.installed else "not installed")
    return table


def _probe_table(hosts, results) -> Table:
    table = Table(title="detected", title_justify="left")
    for column in ("host", "os / kernel", "virt / firmware", "cpus", "memory MiB", "swap", "disks", "nix"):
        table.add_column(column, overflow="fold")
    for h in hosts:
        facts = results.get(h.name, "not probed")
        if isinstance(facts, str):
            table.add_row(h.name, _red(facts), *[""] * 6)
            continue
        disks = "; ".join(
            f"{d.name} {d.transport} {d.size_bytes / 2**30:.1f}G {d.scheduler} ra={d.read_ahead_kb}"
            for d in facts.disks
        )
        table.add_row(
            h.name,
            f"{facts.os.id} {facts.os.version_id} / {facts.kernel_release}",
            f"{facts.virtualization} / {facts.firmware}",
            str(facts.cpu.logical_cpus),
            str(facts.memory.mem_total_bytes // 1048576),
            ", ".join(s.path for s in facts.memory.swap_devices) or "none",
            disks,
            facts.nix.version if facts.nix.installed else "-",
        )
    return table


def cmd_probe(args: argparse.Namespace) -> int:
    """Connect to every host (at most --parallel at once), run HostProbe once each, print a table."""
    from fleetforge.gather import load_inventory, probe
    from fleetforge.runs.commands import probe_record
    from fleetforge.runs.pyinfra_hook import ConnectPhases
    from fleetforge.runs.record import RunRecorder

    with RunRecorder.for_args("probe", args) as rec:
        state, hosts = load_inventory(args.inventory, args.limit, parallel=args.parallel)
        state.add_callback_handler(ConnectPhases(rec))
        with rec.phase("probe"):
            results = probe(state, hosts)
        for h in hosts:
            rec.set_host(probe_record(h, results.get(h.name, "not probed")))
        failed = sorted(name for name, facts in results.items() if isinstance(facts, str))
        if args.json:
            out = {
                h.name: (
                    {"error": f}
                    if isinstance(f := results.get(h.name, "not probed"), str)
                    else redact_facts(f.to_json(), secret_keys(h.data))
                )
                for h in hosts
            }
            print(json.dumps(out, indent=2))
        else:
            console = _console()
            console.print(_probe_table(hosts, results))
            console.print(f"probe: {len(hosts) - len(failed)}/{len(hosts)} hosts answered")
        return rec.finish(1 if failed else 0)


def cmd_plan(args: argparse.Namespace) -> int:
    from fleetforge.gather import load_inventory, probe
    from fleetforge.planner import plan_host
    from fleetforge.runs.commands import plan_record
    from fleetforge.runs.pyinfra_hook import ConnectPhases
    from fleetforge.runs.record import RunRecorder
    from fleetforge.verify import model_warnings

    with RunRecorder.for_args("plan", args) as rec:
        state, hosts = load_inventory(args.inventory, args.limit)
        state.add_callback_handler(ConnectPhases(rec))
        with rec.phase("probe"):
            results = probe(state, hosts)
        out, code, warned, console = {}, 0, False, _console()
        for h in hosts:
            facts = results.get(h.name, "not probed")
            if isinstance(facts, str):
                out[h.name] = {"error": facts}
                rec.set_host(plan_record(h, facts))
                code = max(code, 1)
                continue
            try:
                plan = plan_host(h.name, facts, h.settings)
            except FleetforgeError as exc:  # PlanError: this host's data does not fit its hardware
                out[h.name] = {"error": str(exc)}
                rec.set_host(plan_record(h, facts, error=str(exc)))
                code = EXIT_BAD_INPUT
                continue
            keys = secret_keys(h.data)
            warnings = [f"{r.item}: {r.actual}" for r in model_warnings(h.name, facts, h.settings)]
            warned = warned or bool(warnings)
            rec.set_host(plan_record(h, facts, plan, warnings=warnings))
            plan_json = redact_plan(plan.to_json(), keys)
            out[h.name] = {"facts": redact_facts(facts.to_json(), keys), "plan": plan_json, "warnings": warnings}
            if not args.json:
                console.print(_facts_table(h.name, facts))
                console.print(plan_table(plan, keys))
        if args.json:
            print(json.dumps(out, indent=2))
        else:
            for name, item in out.items():
                if "error" in item:
                    console.print(_red(f"{name}: {item['error']}"))
                for line in item.get("warnings", []):
                    console.print(f"WARN {name}: {line}", style="yellow", markup=False)
        return rec.finish(2 if code == 0 and warned else code)  # 1 or 3 (a host failed) before 2


def cmd_verify(args: argparse.Namespace) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from fleetforge.gather import load_inventory
    from fleetforge.nixcache import verify as nixcache_verify
    from fleetforge.runs.commands import verify_record
    from fleetforge.runs.record import RunRecorder
    from fleetforge.verify import exit_code, testinfra_host, verify_host

    with RunRecorder.for_args("verify", args) as rec:
        _, hosts = load_inventory(args.inventory, args.limit)
        cache = nixcache_verify.prepare(hosts, testinfra_host)

        def one(h):
            settings, modules = cache.settings(h.name, h.settings), cache.nixos_modules(h.name)
            return rec.call(
                "verify", h.name, verify_host, h.name, h.data, settings, cache.checks, modules,
                failed=lambda outcome: any(r.severity == "fail" for r in outcome.results),
            )  # fmt: skip

        with ThreadPoolExecutor(max_workers=min(32, max(1, len(hosts)))) as pool:
            outcomes = list(pool.map(one, hosts))
        for h, outcome in zip(hosts, outcomes, strict=True):
            rec.set_host(verify_record(h, outcome))
        results = [r for outcome in outcomes for r in outcome.results]
        code = rec.finish(exit_code(results))
    if args.json:
        print(json.dumps({"exit_code": code, "results": [r.__dict__ for r in results]}, indent=2))
        return code
    console = _console()
    for h, outcome in zip(hosts, outcomes, strict=True):
        host_results = outcome.results
        bad = [r for r in host_results if r.severity != "ok"]
        ok = len(host_results) - len(bad)
        console.print(f"{h.name}: {ok}/{len(host_results)} checks passed")
        for r in bad:
            console.print(f"  {r.line()}", style="red" if r.severity == "fail" else "yellow")
    console.print({0: "verify: all hosts pass", 1: "verify: FAILED", 2: "verify: passed with warnings"}[code])
    return code


def cmd_disko(args: argparse.Namespace) -> int:
    """Print each host's disko.nix (or, with --json, its layout and disko JSON); probes read-only."""
    from fleetforge.gather import load_inventory, probe
    from fleetforge.layout.disko import render_disko
    from fleetforge.layout.plan import layout_for

    state, hosts = load_inventory(args.inventory, args.limit)
    results = probe(state, hosts)
    out, code = {}, 0
    for h in hosts:
        facts = results.get(h.name, "not probed")
        if isinstance(facts, str):
            print(f"fleetforge: host {h.name}: {facts}", file=sys.stderr)
            code = max(code, 1)
            continue
        try:
            layout = layout_for(h.name, facts, h.settings.disk_layout)
        except FleetforgeError as exc:  # PlanError: host data that does not fit this host
            print(f"fleetforge: {exc}", file=sys.stderr)
            code = EXIT_BAD_INPUT
            continue
        out[h.name] = {"layout": layout.to_json(), "disko": layout.disko_config()}
        if not args.json:
            print(render_disko(layout))
    if args.json:
        print(json.dumps(out, indent=2))
    return code


def cmd_bundle_fetch(args: argparse.Namespace) -> int:
    """Download and verify the manifest's files into the bundle directory; exit 1 if any failed."""
    from fleetforge.bundle.fetch import fetch
    from fleetforge.bundle.manifest import load_manifest

    report = fetch(load_manifest(args.manifest), args.dir, parallel=args.parallel)
    for r in report.results:
        line = f"{r.name}: {r.status}" + (f" ({r.fetched_bytes} bytes)" if r.fetched_bytes else "")
        print(line + (f": {r.error}" if r.error else ""), file=sys.stderr if r.error else sys.stdout)
    print(f"bundle {args.dir}: {report.fetched_bytes} bytes fetched; index {args.dir}/index.json")
    return 0 if report.ok else 1


def cmd_bundle_status(args: argparse.Namespace) -> int:
    """Per host: files and bytes a push would send, disk use after; nothing is sent."""
    from fleetforge.bundle.plan import plan_push
    from fleetforge.bundle.push import load_index
    from fleetforge.facts.iso_dir import IsoDir
    from fleetforge.gather import gather, load_inventory

    state, hosts = load_inventory(args.inventory, args.limit)
    indexes = {h.name: load_index(args.bundle or h.settings.iso_bundle) for h in hosts}
    results = gather(state, hosts, IsoDir, lambda h: {"iso_dir": h.settings.iso_dir})
    out, code = {}, 0
    for h in hosts:
        found = results.get(h.name, "not probed")
        if isinstance(found, str):
            out[h.name] = {"error": found}
            code = 1
            continue
        plan = plan_push(indexes[h.name], found, prune=h.settings.iso_prune)
        code = max(code, 1 if plan.verdict == "refuse" else 0)
        out[h.name] = {
            "iso_dir": h.settings.iso_dir,
            "send": [e.name for e in plan.send],
            "send_bytes": plan.send_bytes,
            "prune": plan.prune,
            "up_to_date": plan.up_to_date,
            "used_after_percent": round(plan.used_after_percent, 1),
            "verdict": plan.verdict,
            "reason": plan.reason,
        }
    if args.json:
        print(json.dumps(out, indent=2))
        return code
    table = Table(title="iso bundle status", title_justify="left")
    for column in ("host", "iso_dir", "to send", "bytes", "up to date", "used after", "verdict"):
        table.add_column(column, overflow="fold")
    for name, item in out.items():
        if "error" in item:
            table.add_row(name, _red(item["error"]), *[""] * 5)
            continue
        verdict = item["reason"] or item["verdict"]
        table.add_row(
            name, item["iso_dir"], ", ".join(item["send"]) or "-", str(item["send_bytes"]), str(item["up_to_date"]),
            f"{item['used_after_percent']}%", verdict,
        )  # fmt: skip
    _console().print(table)
    return code


def _add_bundle_parser(sub) -> None:
    bundle = sub.add_parser("bundle", help="offline ISO bundles: fetch once here, push what changed")
    verbs = bundle.add_subparsers(dest="bundle_command", required=True)
    f = verbs.add_parser("fetch", help="download and verify a manifest's files (resumes, skips verified files)")
    f.add_argument("manifest", help="bundle manifest (TOML)")
    f.add_argument("--dir", default="bundle", help="bundle directory (default: bundle)")
    f.add_argument("--parallel", type=int, default=3, help="files downloaded at once (default 3)")
    f.set_defaults(func=cmd_bundle_fetch)
    s = verbs.add_parser("status", help="what a push would send to each host, and disk use after")
    s.add_argument("inventory", help="pyinfra inventory file")
    s.add_argument("--bundle", help="bundle directory (default: each host's iso_bundle)")
    s.add_argument("--limit", action="append", help="host or group name (repeatable)")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(func=cmd_bundle_status)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["testbed"]:
        from fleetforge.testbed.cli import main as testbed_main

        return testbed_main(argv[1:])
    parser = argparse.ArgumentParser(prog="fleetforge", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, text in (
        ("probe", cmd_probe, "detect every host's hardware in one batched command per host; changes nothing"),
        ("plan", cmd_plan, "print each host's detected hardware and its plan; changes nothing"),
        ("verify", cmd_verify, "check live values on every host against its plan (testinfra)"),
        ("disko", cmd_disko, "print each host's disko.nix, planned from its detected disks; changes nothing"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("inventory", help="pyinfra inventory file, e.g. inventory.py")
        p.add_argument("--limit", action="append", help="host or group name (repeatable)")
        p.add_argument("--json", action="store_true", help="machine-readable output")
        if name == "probe":
            p.add_argument("--parallel", type=int, default=None, help="at most N hosts at once (default: all)")
        if name != "disko":
            add_record_arguments(p)  # the run store: fleetforge.runs
        p.set_defaults(func=func)
    sub.add_parser("testbed", help="local QEMU test hosts: up|down|status|reset|build")
    _add_bundle_parser(sub)
    from fleetforge.rollout import add_parser as add_rollout_parser

    add_rollout_parser(sub)
    from fleetforge.measure.cli import add_parser as add_tune_parser

    add_tune_parser(sub)
    from fleetforge.report.cli import add_parser as add_report_parser

    add_report_parser(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except FleetforgeError as exc:
        print(f"fleetforge: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
