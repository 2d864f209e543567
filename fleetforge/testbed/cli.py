"""``fleetforge testbed ...`` command line (also ``python -m fleetforge.testbed ...``).

Subcommands::

    up [NAME[:FLAVOUR] ...]   start (or keep) VMs; default vm-blk-1:blk vm-scsi-1:scsi
    down [NAME ...]           stop VMs and delete their disks (default: all)
    status [--json]           table (or JSON list) of the VMs, with SSH reachability
    reset NAME                back to the "clean" snapshot
    stop NAME                 stop one VM, keep it in the state (an unreachable host)
    ssh NAME [COMMAND ...]    run a command (or an interactive shell) as root
    build [--force]           build the image and the golden states now
    prune                     delete cached images of other recipes
    check                     list missing Debian packages
    inventory                 print the pyinfra inventory entries as JSON

Exit status: 0 success, 1 a testbed error (message on stderr), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence

from .errors import TestbedError
from .flavours import DEFAULT_SPECS, FLAVOURS
from .image import clean_images
from .prereq import APT_PACKAGES, missing_packages
from .vm import Testbed, VMInfo, inventory_hosts


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _log(msg: str) -> None:
    print(f"testbed: {msg}", file=sys.stderr, flush=True)


def _yes_no(v: bool | None) -> str:
    return "-" if v is None else ("yes" if v else "no")


def format_table(vms: Sequence[VMInfo]) -> str:
    """The ``status`` table: one line per VM."""
    head = ("NAME", "FLAVOUR", "STATE", "SSH", "PORT", "PID", "RAM", "CPU", "DISK", "RSS", "ACCEL")
    rows = [head]
    for vm in vms:
        rows.append(
            (
                vm.name,
                vm.flavour,
                "running" if vm.running else "stopped",
                _yes_no(vm.reachable),
                str(vm.ssh_port),
                str(vm.pid or "-"),
                f"{vm.memory_mib}M",
                str(vm.vcpus),
                f"/dev/{vm.root_disk}",
                f"{vm.rss_mib:.0f}M" if vm.rss_mib else "-",
                vm.accel,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fleetforge testbed",
        description="Disposable OVH-like QEMU test hosts built from Debian packages.",
    )
    p.add_argument(
        "--dir",
        help="testbed directory (default $FLEETFORGE_TESTBED_DIR or ~/.cache/fleetforge/testbed)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    up = sub.add_parser("up", help="start (or keep) VMs")
    up.add_argument(
        "specs",
        nargs="*",
        metavar="NAME[:FLAVOUR]",
        help=f"VMs (default: {' '.join(f'{n}:{f}' for n, f in DEFAULT_SPECS)}); "
        f"flavours: {', '.join(sorted(FLAVOURS))}",
    )
    up.add_argument("--json", action="store_true", help="print the VMs as JSON")
    down = sub.add_parser("down", help="stop VMs and delete their disks")
    down.add_argument("names", nargs="*", metavar="NAME", help="default: all")
    st = sub.add_parser("status", help="show the VMs")
    st.add_argument("--json", action="store_true", help="JSON list instead of a table")
    st.add_argument("--no-ssh", action="store_true", help="do not test SSH logins")
    r = sub.add_parser("reset", help="restore a VM to its clean snapshot")
    r.add_argument("name")
    s = sub.add_parser("stop", help="stop one VM but keep it listed (unreachable host)")
    s.add_argument("name")
    sh = sub.add_parser("ssh", help="run a command on a VM as root")
    sh.add_argument("name")
    sh.add_argument("command", nargs=argparse.REMAINDER)
    b = sub.add_parser("build", help="build the image and golden states")
    b.add_argument("--force", action="store_true", help="rebuild the image even if cached")
    b.add_argument("--no-golden", action="store_true", help="image only")
    sub.add_parser("prune", help="delete cached images of other recipes")
    sub.add_parser("check", help="list missing Debian packages")
    inv = sub.add_parser("inventory", help="print pyinfra inventory entries as JSON")
    inv.add_argument("--running-only", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the testbed CLI with ``argv`` (without the program name); return the exit status."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (timeout, CI cancel) unwinds like Ctrl-C: builds stop their children cleanly
        signal.signal(signal.SIGTERM, _terminate)
    tb = Testbed(args.dir, log=None if args.quiet else _log)
    try:
        if args.cmd == "up":
            vms = tb.up(args.specs or None)
            if args.json:
                print(json.dumps([vm.model_dump(mode="json") for vm in vms], indent=1))
            else:
                print(format_table(vms))
        elif args.cmd == "down":
            tb.down(args.names or None)
        elif args.cmd == "status":
            vms = tb.status(check_ssh=not args.no_ssh)
            if args.json:
                print(json.dumps([vm.model_dump(mode="json") for vm in vms], indent=1))
            elif vms:
                print(format_table(vms))
            else:
                print(f"no VMs (testbed dir {tb.layout.root})")
        elif args.cmd == "reset":
            took = tb.reset(args.name)
            print(f"{args.name}: reset in {took:.2f} s")
        elif args.cmd == "stop":
            tb.stop(args.name)
        elif args.cmd == "ssh":
            from .ssh import ssh_argv

            vm = tb.info(args.name)
            cmd = ssh_argv(vm.target(), " ".join(args.command) or None, control_path=vm.control_path)
            if not args.command:
                cmd.insert(1, "-t")
            sys.stdout.flush()
            os.execv(cmd[0], cmd)
        elif args.cmd == "build":
            img = tb.build(force=args.force, goldens=not args.no_golden)
            print(f"image {img.recipe_hash}: {img.path} {img.timings()}")
        elif args.cmd == "prune":
            img = tb.image()
            in_use = {vm.image for vm in tb.status(check_ssh=False)}  # keep images of listed VMs
            for p in clean_images(tb.layout, keep=in_use | ({img.recipe_hash} if img else set())):
                print(f"removed {p}")
        elif args.cmd == "check":
            missing = missing_packages(build=True)
            if missing:
                print("missing: apt-get install -y --no-install-recommends " + " ".join(missing))
                return 1
            print("all present: " + " ".join(APT_PACKAGES))
        elif args.cmd == "inventory":
            print(json.dumps(inventory_hosts(tb.layout.root, running_only=args.running_only, required=True), indent=1))
    except (TestbedError, ValueError, KeyError) as e:
        print(f"fleetforge testbed: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `status --json | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
