"""fleetforge as a user installs it: the wheel (``pip wheel --no-deps``), installed into a fresh
virtualenv, used from an empty directory of the user's own, with a one-line deploy file, against a
test VM. Nothing of the checkout is on the path: templates and data files come from the package.
"""

import os
import subprocess
import sys
import textwrap

import pytest

from tests.e2e.helpers import REPO

pytestmark = pytest.mark.vm

VM = "vm-blk-1"


def sh(*argv, cwd, check=True, timeout=900) -> subprocess.CompletedProcess:
    # the checkout's virtualenv off PATH and nothing of the checkout on PYTHONPATH
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    out = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and out.returncode != 0:
        raise AssertionError(f"{argv[:3]} exited {out.returncode}:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``(venv bin directory, the user's empty directory)``: the wheel and its dependencies
    installed into a new virtualenv, outside the checkout."""
    work = tmp_path_factory.mktemp("package")
    sh(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "-q",
        "-w",
        str(work),
        str(REPO),
        cwd=work,
    )
    (wheel,) = work.glob("fleetforge-*.whl")
    sh(sys.executable, "-m", "venv", str(work / "venv"), cwd=work)
    sh(str(work / "venv/bin/pip"), "install", "-q", "--disable-pip-version-check", str(wheel), cwd=work)
    user = work / "my-infra"
    user.mkdir()
    return work / "venv" / "bin", user


def test_the_wheel_installs_no_generic_top_level_module_and_ships_its_data(installed):
    bin_dir, user = installed
    python = str(bin_dir / "python")
    assert sh(python, "-c", "import facts", cwd=user, check=False).returncode != 0  # no top-level 'facts'
    where = sh(python, "-c", "import fleetforge, pathlib; print(pathlib.Path(fleetforge.__file__).parent)", cwd=user)
    package = where.stdout.strip()
    assert "site-packages" in package and str(REPO) not in package
    listed = sh(
        python,
        "-c",
        "import importlib.resources as r; print(sorted(p.name for p in r.files('fleetforge').joinpath('templates').iterdir()))",
        cwd=user,
    )
    assert "nixos-module.nix.j2" in listed.stdout and "disko.nix.j2" in listed.stdout
    # each tuning component's template beside its module
    components = sh(
        python,
        "-c",
        "from fleetforge.components import TEMPLATE_DIRS; print(sorted(p.name for d in TEMPLATE_DIRS for p in d.glob('*.j2')))",
        cwd=user,
    )
    for template in ("udev-io.rules.j2", "sysctl.conf.j2", "zram-generator.conf.j2", "nix.conf.j2"):
        assert template in components.stdout, components.stdout
    standin = sh(
        python,
        "-c",
        "from fleetforge.testbed.nixos_standin import STANDIN; print(sorted(p.name for p in STANDIN.iterdir()))",
        cwd=user,
    )
    assert "nixos-rebuild" in standin.stdout and "eval.nix" in standin.stdout


def test_a_one_line_deploy_file_in_an_empty_directory_tunes_a_test_vm(installed, testbed, testbed_vms):
    bin_dir, user = installed
    testbed.reset(VM)
    (data,) = [d for n, d in testbed.inventory_hosts() if n == VM]
    (user / "inventory.py").write_text(textwrap.dedent(f"hosts = [({VM!r}, {data!r})]\n"))
    (user / "deploy.py").write_text("from fleetforge.vps import tune_host; tune_host()\n")
    out = sh(str(bin_dir / "pyinfra"), "-y", "inventory.py", "deploy.py", cwd=user, check=False)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    rules = testbed.ssh(VM, "cat /etc/udev/rules.d/60-fleetforge-io.rules /etc/sysctl.d/60-fleetforge.conf", check=True)
    assert "fleetforge" in rules.stdout and "vm.swappiness" in rules.stdout
    verify = sh(str(bin_dir / "fleetforge"), "verify", "inventory.py", cwd=user, check=False)
    assert verify.returncode == 0, verify.stdout[-3000:]
