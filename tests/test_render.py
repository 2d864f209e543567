"""Rendering: StrictUndefined, nix.conf merge idempotence, one rule per disk."""

import jinja2
import pytest

from fleetforge.components import desired_files
from fleetforge.components.nix_settings import NIX_BEGIN, nix_kept_lines
from fleetforge.models import ManagedFile
from fleetforge.paths import NIX_CONF, SYSCTL_CONF, UDEV_RULES, ZRAM_GENERATOR_CONF
from fleetforge.planner import plan_host
from fleetforge.render import comment, environment, render, unit_value
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
    assert 'KERNEL=="vda", ATTR{queue/scheduler}="mq-deadline", ATTR{queue/read_ahead_kb}="4096"' in files[UDEV_RULES]
    assert "\nvm.swappiness = 180\n" in files[SYSCTL_CONF]
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


# One filter per target syntax (fleetforge.render): a value never changes a file's structure.


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text", "plain text"),
        ("a\nb", "a\\nb"),
        ("a\rb\\", "a\\rb\\\\"),
        ("\u2028\u202e\x1b", "\\u2028\\u202e\\x1b"),
    ],
)
def test_comment_text_stays_on_one_line(text, expected):
    assert comment(text) == expected
    assert (
        render("nixos-module.nix.j2", host=text, name="x.nix", options={})
        .splitlines()[0]
        .endswith(f"for {expected} (x.nix). Edit host data, not this file:")
    )


@pytest.mark.parametrize("value", ["10.0.0.1:5000; include /etc/passwd", "a b", "x#y", "$host", "a\n", ""])
def test_nginx_and_exports_values_are_one_bare_word(value):
    with pytest.raises(ValueError, match="config: refusing value"):
        render("nix-cache-nginx.conf.j2", listen=value, cache_dir="/var/cache/x", clients=[])
    with pytest.raises(ValueError, match="config: refusing value"):
        render("nix-cache.exports.j2", cache_dir="/var/cache/x", clients=[value])


def test_nginx_and_exports_keep_their_structure():
    nginx = render("nix-cache-nginx.conf.j2", listen="[fd00::1]:5000", cache_dir="/srv/c", clients=["10.0.0.2"])
    assert "    listen [fd00::1]:5000;\n    root /srv/c;\n    allow 10.0.0.2;\n    deny all;\n" in nginx
    exports = render("nix-cache.exports.j2", cache_dir="/srv/c", clients=["10.0.0.2", "10.0.0.3"])
    assert exports.splitlines()[-1] == (
        "/srv/c 10.0.0.2(ro,root_squash,no_subtree_check,sec=sys) 10.0.0.3(ro,root_squash,no_subtree_check,sec=sys)"
    )


@pytest.mark.parametrize("value", ["/srv\nExecStartPre=/bin/sh", "/srv\\", " /srv", ""])
def test_unit_values_are_one_line_without_backslashes(value):
    with pytest.raises(ValueError, match="systemd unit: refusing value"):
        render("nix-cache-nfs.mount.j2", cache="c", what=value, where="/srv/c")
    assert unit_value("100%") == "100%%"
