"""The fleet as its owner sees it, end to end on the two kinds of test VM: the README's main
command (deploy, then verify) and one rollout leave their records in the run store; a declared
OVH model the VM does not have is a warning (exit 2) in plan and verify; and ``fleetforge
report`` renders the whole history, checked in headless Chromium.

The VMs are second instances of the default testbed's two (vm-blk-2 like vm-blk-1: virtio-blk,
1 vCPU, 1 GiB; vm-scsi-2 like vm-scsi-1: virtio-scsi, 2 vCPUs, 2 GiB), so this module runs in
the second pytest process beside the rest of the suite (tests/side-modules.txt). The tests run
in order on them, from their clean snapshot.
"""

import json
import shutil
from pathlib import Path

import pytest

from fleetforge.report.svg import PHASE_COLOURS
from fleetforge.runs.store import RunStore
from tests.e2e import helpers
from tests.measure.browser import console_problems, read_png, run_chromium
from tests.measure.test_report import parse
from tests.report.pixels import colour_counts, rgb

pytestmark = pytest.mark.vm

HOSTS = ("vm-blk-2", "vm-scsi-2")
# what vm-blk-2 (1 vCPU, 1 GiB, a 10 GiB vda) is not: OVH's 2 vCores / 4 GB / 80 GB model
WRONG_MODEL = {"name": "vps-le-2-4-80", "vcores": 2, "memory_mib": 4096, "disk_gb": 80}
SCREENSHOT = Path("/tmp/fleetforge-fleet-report-vms.png")
SIZE = (1280, 2400)


@pytest.fixture(scope="module")
def fleet(testbed, tmp_path_factory):
    testbed.up(["vm-blk-2:blk", "vm-scsi-2:scsi"])
    tmp = tmp_path_factory.mktemp("fleet")
    inventory = tmp / "inventory.py"
    inventory.write_text(
        "import json, os\n"
        "from fleetforge.inventory import group\n"
        "from fleetforge.testbed import inventory_hosts\n"
        "_model = json.loads(os.environ.get('FF_MODEL', 'null'))\n"
        f"testbed = group([(n, {{**d, **({{'ovh_model': _model}} if _model and n == 'vm-blk-2' else {{}})}})\n"
        f"                 for n, d in inventory_hosts() if n in {HOSTS!r}],\n"
        "                {'fleetforge_connector': 'asyncssh'})\n"
    )
    for name in HOSTS:
        testbed.reset(name)
    env = {"FLEETFORGE_RUN_STORE": str(tmp / "runs.sqlite")}
    yield tmp, str(inventory), env
    testbed.down(list(HOSTS))


def run(env: dict, *argv: str, model: dict | None = None):
    return helpers.run(*argv, env={**env, "FF_MODEL": json.dumps(model)}, timeout=900)


def test_the_main_command_and_a_rollout_are_recorded(fleet):
    tmp, inventory, env = fleet
    deploy = run(env, "pyinfra", "-y", inventory, "deploys/vps.py")
    assert deploy.returncode == 0, deploy.stdout[-2000:] + deploy.stderr[-2000:]
    verify = run(env, "fleetforge", "verify", inventory)
    assert verify.returncode == 0, verify.stdout[-2000:]
    rollout = run(env, "fleetforge", "rollout", inventory, "deploys/vps.py", "--serial", "1,100%",
                  "--record", str(tmp / "rollout.json"))  # fmt: skip
    assert rollout.returncode == 0, rollout.stdout[-2000:] + rollout.stderr[-2000:]

    runs = RunStore(tmp / "runs.sqlite").runs()
    assert [r.command for r in runs] == ["deploy", "verify", "rollout"]  # the wave's own pyinfra left none
    first, checked, rolled = runs
    assert first.target == "deploys/vps.py" and first.exit_code == 0 and not first.dry
    assert {h.host: h.status for h in first.hosts} == dict.fromkeys(HOSTS, "changed")
    for h in first.hosts:  # what the first deploy wrote, the machine it ran on
        assert any("sysctl" in c for c in h.changed), h.changed
        assert h.hardware is not None and h.facts_digest and h.plan is not None
    assert {h.host: h.status for h in checked.hosts} == dict.fromkeys(HOSTS, "ok")
    assert all(c.severity == "ok" for h in checked.hosts for c in h.checks)
    # the digest is the machine's: the deploy changed files and sysctls, not the machine
    assert {h.host: h.facts_digest for h in first.hosts} == {h.host: h.facts_digest for h in checked.hosts}
    assert rolled.exit_code == 0 and {h.host: h.wave for h in rolled.hosts} == {"vm-blk-2": 0, "vm-scsi-2": 1}
    deploys = {p.host: p for p in rolled.phases if p.name == "deploy"}
    assert deploys["vm-blk-2"].ended_at <= deploys["vm-scsi-2"].started_at  # the canary's wave came first


def test_a_declared_model_the_vm_does_not_have_is_a_warning(fleet):
    _, inventory, env = fleet
    matching = dict(WRONG_MODEL, vcores=1, memory_mib=1024, disk_gb=10)  # what vm-blk-2 has: no warning
    assert run(env, "fleetforge", "verify", inventory, model=matching).returncode == 0
    plan = run(env, "fleetforge", "plan", inventory, model=WRONG_MODEL)
    assert plan.returncode == 2, plan.stdout[-2000:] + plan.stderr[-2000:]
    assert "WARN vm-blk-2: hardware matches OVH model vps-le-2-4-80: vCPU 1 detected" in plan.stdout
    verify = run(env, "fleetforge", "verify", inventory, "--json", model=WRONG_MODEL)
    assert verify.returncode == 2, verify.stdout[-2000:]
    warned = [r for r in json.loads(verify.stdout)["results"] if r["severity"] != "ok"]
    assert {(r["host"], r["severity"]) for r in warned} == {("vm-blk-2", "warn")}
    assert {r["actual"].split(" detected")[0] for r in warned} == {"vCPU 1", "RAM 0.9 GiB", "disk 10 GiB"}


def test_the_report_renders_the_history_of_both_vms_in_chromium(fleet):
    tmp, inventory, env = fleet
    out = run(env, "fleetforge", "report", inventory, "-o", str(tmp / "fleet.html"))
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    page = tmp / "fleet.html"
    shot = tmp / "fleet.png"
    loaded = run_chromium(page.as_uri(), tmp, screenshot=shot, size=SIZE)
    shutil.copyfile(shot, SCREENSHOT)
    assert console_problems(loaded.stderr) == []
    dom = parse(loaded.dom)
    assert [c.attrs["data-host"] for c in dom.find_all("article", "card")] == list(HOSTS)
    text = dom.text()
    for command in ("deploy", "verify", "rollout", "plan"):
        assert command in text
    assert "hardware matches OVH model vps-le-2-4-80" in text  # the warning of the verify above
    assert len(dom.find_all("figure", "rollout")) == 1
    png = read_png(shot)
    assert (png.width, png.height) == SIZE
    colours = colour_counts(shot)
    for name in ("snapshot", "deploy", "verify"):  # the rollout's bars, drawn
        assert colours[rgb(PHASE_COLOURS[name])] > 2 * 22 * 14, name
