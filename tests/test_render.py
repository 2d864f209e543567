"""Rendering: StrictUndefined, nix.conf merge idempotence, one rule per disk."""

import jinja2
import pytest

from fleetforge.models import ManagedFile
from fleetforge.paths import NIX_CONF, SYSCTL_CONF, UDEV_RULES, ZRAM_GENERATOR_CONF
from fleetforge.planner import plan_host
from fleetforge.render import NIX_BEGIN, desired_files, environment, nix_kept_lines, render
from fleetforge.settings import HostSettings, settings_from_data
from tests.conftest import facts_from


def test_undefined_variable_fails_instead_of_rendering_empty():
    with pytest.raises(jinja2.UndefinedError):
        render("zram-generator.conf.j2")
    with pytest.raises(jinja2.UndefinedError):
        environment().from_string("{{ zram.size_mib.value }}").render(zram={})


def test_files_reflect_the_plan():
    facts = facts_from("controller-docker-vda")
    plan = plan_host("h", facts, HostSettings())
    files = desired_files(plan, facts)
    assert set(files) == {UDEV_RULES, SYSCTL_CONF, ZRAM_GENERATOR_CONF, NIX_CONF}
    assert 'KERNEL=="vda", ATTR{queue/scheduler}="none", ATTR{queue/read_ahead_kb}="4096"' in files[UDEV_RULES]
    assert "\nvm.swappiness = 133\n" in files[SYSCTL_CONF]
    assert f"\nzram-size = {plan.zram.size_mib.value}\n" in files[ZRAM_GENERATOR_CONF]
    off = desired_files(plan_host("h", facts, settings_from_data("h", {"zram": False})), facts)
    assert "\n[zram0]\n" not in off[ZRAM_GENERATOR_CONF] and "zram-size" not in off[ZRAM_GENERATOR_CONF]


def test_nix_conf_keeps_foreign_lines_writes_each_key_once_and_is_idempotent():
    facts = facts_from("controller-docker-vda")
    existing = "sandbox = false\nmax-jobs = 8\nextra-platforms = aarch64-linux\n"
    facts = facts.model_copy(update={"files": {NIX_CONF: ManagedFile(sha256="x", content=existing)}})
    plan = plan_host("h", facts, HostSettings())
    first = desired_files(plan, facts)[NIX_CONF]
    assert first.startswith("sandbox = false\nextra-platforms = aarch64-linux\n" + NIX_BEGIN)
    assert first.count("\nmax-jobs = ") == 1
    again = facts.model_copy(update={"files": {NIX_CONF: ManagedFile(sha256="y", content=first)}})
    assert desired_files(plan, again)[NIX_CONF] == first


def test_kept_lines_drop_old_managed_block():
    text = f"a = 1\n{NIX_BEGIN}\ncores = 4\n# END fleetforge\nb = 2\n"
    assert nix_kept_lines(text, {"cores"}) == ["a = 1", "b = 2"]
