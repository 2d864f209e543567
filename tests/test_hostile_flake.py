"""Hostile-host and unlucky-operator review of flake support (``fleetforge.nixos.flake``,
``fleetforge.nixos.activate``'s git handling, ``verify.persistence_checks`` on flake hosts).

Each case was first written against the code as it was, where it failed (a quadratic scan,
paths read from the wrong place, strings mis-read, git errors taken for "no repository"); the
fixes are in ``fleetforge.nixos.nix_scan``, ``.flake`` and ``.activate``. The Nix semantics
claimed in the mis-tokenisation cases were confirmed with ``nix-instantiate --parse`` (Nix 2.8):
the ``./configuration.nix`` there is string content.
"""

import os
import random
import shutil
import subprocess
import time
from types import SimpleNamespace

import pytest

from fleetforge.models import ManagedFile
from fleetforge.nixos import activate as nixos_activate
from fleetforge.nixos.flake import FlakeTarget, flake_target
from fleetforge.paths import NIXOS_CONFIGURATION, NIXOS_FLAKE
from tests.conftest import facts_from


def flake(entry: str, before: str = "") -> str:
    """A flake whose ``outputs`` set holds ``before`` then ``entry``."""
    return "{\n  outputs = { self, nixpkgs, ... }: {\n    " + before + entry + "\n  };\n}\n"


def entry(body: str) -> str:
    return "nixosConfigurations.web-1 = nixpkgs.lib.nixosSystem { " + body + " };"


# ---------------------------------------------------------------- 1. command structure


@pytest.mark.parametrize(
    "attribute",
    ["-rf", "--option", "web-1\n", "web-1;reboot", "web-1 --impure", "web\u00e9", "K\u212a", "../x", "/etc", "web-1#x"],
)
def test_names_that_could_change_a_command_are_refused(attribute):
    with pytest.raises(ValueError, match="expected letters"):
        flake_target(flake(entry("modules = [ ./configuration.nix ];")), attribute)


def test_the_flake_ref_is_one_quoted_argument_after_a_fixed_path():
    captured = []

    class Host:
        def run_shell_command(self, cmd):
            captured.append(cmd.get_raw_value())
            return True, SimpleNamespace(stdout_lines=[], stderr_lines=[])

    ref = flake_target(flake(entry("modules = [ ./configuration.nix ];")), "web-1").ref
    nixos_activate._run(Host(), "nixos-rebuild", "test", "--flake", ref)
    assert captured == ["nixos-rebuild test --flake '/etc/nixos#web-1'"]


# ---------------------------------------------------------------- 2. crash / hang


@pytest.mark.parametrize(
    "text",
    [
        "{" * 1_000_000,
        "[(" * 500_000 + "nixosConfigurations.web-1 = ",
        '"' + "a\\" * 500_000,
        "''" + "''\\" * 300_000,
        "''" + "''$" * 300_000 + "${",
        "/*" + "x" * 1_000_000,
        "#" * 1_000_000,
        '"nixosConfigurations.web-1 = "' * 30_000,
        "nixosConfigurations.web-1 = " + "{" * 500_000,
    ],
    ids=["braces", "brackets", "string", "ind-string", "ind-dollar", "comment", "hashes", "strings", "open-entry"],
)
def test_megabyte_inputs_are_linear_and_raise_only_valueerror(text):
    start = time.monotonic()
    try:
        flake_target(text, "web-1")
    except ValueError:
        pass
    assert time.monotonic() - start < 3


def test_repeated_open_nixosconfigurations_sets_are_not_quadratic():
    """Brackets are matched once; many ``nixosConfigurations`` are refused, not re-scanned
    (before: k openers cost O(k*n), 4000 of them took ~20 s)."""
    text = "nixosConfigurations = {" * 2000  # 46 kB
    start = time.monotonic()
    with pytest.raises(ValueError):
        flake_target(text, "web-1")
    assert time.monotonic() - start < 1


def test_random_token_soup_raises_only_valueerror():
    tokens = [
        "{",
        "}",
        "[",
        "]",
        "(",
        ")",
        ";",
        "=",
        '"',
        "''",
        "'''",
        "''$",
        "''\\",
        "\\",
        "${",
        "#",
        "\n",
        "/*",
        "*/",
        "nixosConfigurations",
        ".",
        "web-1",
        '"web-1"',
        " ",
        "./configuration.nix",
        "let",
        "in",
    ]
    rng = random.Random(7)
    for _ in range(5000):
        text = "".join(rng.choice(tokens) for _ in range(rng.randint(0, 60)))
        try:
            flake_target(text, "web-1")
        except ValueError:
            pass


# ---------------------------------------------------------------- 3. false acceptance


FALSE_ACCEPT = {
    # the path elsewhere in the same entry
    "specialArgs": flake(entry("specialArgs = { c = ./configuration.nix; }; modules = [ ./other.nix ];")),
    "let-in-entry": flake(
        "nixosConfigurations.web-1 = let c = ./configuration.nix; in "
        "nixpkgs.lib.nixosSystem { modules = [ ./other.nix ]; };"
    ),
    # another attribute path that merely ends in nixosConfigurations.web-1
    "prefixed-name": flake(
        entry("modules = [ ./other.nix ];"),
        before="oldnixosConfigurations.web-1 = { modules = [ ./configuration.nix ]; };\n    ",
    ),
    "nested-path": flake(
        entry("modules = [ ./other.nix ];"),
        before="legacy.nixosConfigurations.web-1 = { modules = [ ./configuration.nix ]; };\n    ",
    ),
    # a later definition wins in Nix; the parser reads the first set only
    "update-operator": flake(
        "nixosConfigurations = { web-1 = nixpkgs.lib.nixosSystem { modules = [ ./configuration.nix ]; }; }"
        " // { web-1 = nixpkgs.lib.nixosSystem { modules = [ ./other.nix ]; }; };"
    ),
    # mis-tokenised strings: in Nix the path is string content (nix-instantiate --parse)
    # ''-string escapes: the loop tests for the closing '' before the escape, so ''' and ''$ end
    # the string early (the ''\ branch is dead code too)
    "ind-string-quote-escape": flake(entry("modules = [ ./other.nix ]; d = '' ''' ./configuration.nix ''; e = ''x'';")),
    "ind-string-dollar-escape": flake(
        entry("modules = [ ./other.nix ]; d = '' ''${ ./configuration.nix ''; e = ''x'';")
    ),
    "comment-in-interpolation": flake(entry('modules = [ ./other.nix ]; d = "${ /* " */ "x" } ./configuration.nix";')),
    "url-literal-star": flake(entry('modules = [ ./other.nix ]; u = http://x/*; d = "*/ ./configuration.nix";')),
}


@pytest.mark.parametrize("text", FALSE_ACCEPT.values(), ids=FALSE_ACCEPT.keys())
def test_an_entry_that_does_not_import_configuration_nix_is_not_accepted(text):
    with pytest.raises(ValueError):
        flake_target(text, "web-1")


REAL_WORLD = {
    "system-attr": flake(entry('system = "x86_64-linux"; modules = [ ./configuration.nix ];')),
    "at-inputs": flake(entry("modules = [ ./configuration.nix ];")).replace(
        "{ self, nixpkgs, ... }:", "{ self, nixpkgs }@inputs:"
    ),
    "specialArgs-inherit": flake(entry("specialArgs = { inherit inputs; }; modules = [ ./configuration.nix ];")),
    "quoted-set": flake(
        'nixosConfigurations = { "web-1" = nixpkgs.lib.nixosSystem { modules = [ ./configuration.nix ]; }; };'
    ),
    "two-hosts": flake(
        "nixosConfigurations = { db-1 = nixpkgs.lib.nixosSystem { modules = [ ./db.nix ]; };"
        " web-1 = nixpkgs.lib.nixosSystem { modules = [ ./hardware.nix ./configuration.nix ]; }; };"
    ),
    "url-in-comment-and-string": "# see https://nixos.org/*\n"
    + flake(entry('modules = [ ./configuration.nix ]; d = "/* x";')),
}


@pytest.mark.parametrize("text", REAL_WORLD.values(), ids=REAL_WORLD.keys())
def test_common_shapes_are_accepted(text):
    assert flake_target(text, "web-1") == FlakeTarget("web-1", via_configuration=True)


FALSE_REFUSE = {
    # _value stops at the first ';' at depth 0, which here belongs to the let binding / with
    "let-system": flake(
        'nixosConfigurations.web-1 = let system = "x86_64-linux"; in '
        "nixpkgs.lib.nixosSystem { inherit system; modules = [ ./configuration.nix ]; };"
    ),
    "with-lib": flake(
        "nixosConfigurations.web-1 = with nixpkgs.lib; nixosSystem { modules = [ ./configuration.nix ]; };"
    ),
}


@pytest.mark.parametrize("text", FALSE_REFUSE.values(), ids=FALSE_REFUSE.keys())
def test_let_and_with_around_the_entry_are_not_refused_as_listing_neither(text):
    """``let ... in`` and ``with E;`` before the call consume their own ``;``."""
    assert flake_target(text, "web-1").via_configuration


def test_inherit_into_nixosconfigurations_is_refused_with_a_clear_message():
    text = flake(
        "nixosConfigurations = { inherit web-1; };",
        before="web-1 = nixpkgs.lib.nixosSystem { modules = [ ./configuration.nix ]; };\n    ",
    )
    with pytest.raises(ValueError, match="has no nixosConfigurations.web-1"):
        flake_target(text, "web-1")


def test_verify_flags_a_flake_host_whose_flake_no_longer_reaches_fleetforge():
    """After an operator drops ./configuration.nix from the entry (or renames it), verify fails
    with the reason instead of staying green while the next nixos-rebuild loses the modules."""
    from fleetforge.planner import plan_host
    from fleetforge.settings import HostSettings
    from fleetforge.verify import persistence_checks

    facts = facts_from("qemu-virtio-blk-vda-bios")
    conf = "{ ... }:\n{\n  imports = [ ./hardware-configuration.nix ./fleetforge ];\n}\n"
    files = {
        **facts.files,
        NIXOS_CONFIGURATION: ManagedFile(sha256="x", content=conf),
        NIXOS_FLAKE: ManagedFile(sha256="x", content=flake(entry("modules = [ ./other.nix ];"))),
    }
    facts = facts.model_copy(
        update={"os": facts.os.model_copy(update={"id": "nixos", "hostname": "web-1"}), "files": files}
    )
    checks = list(persistence_checks(plan_host("web-1", facts, HostSettings()), facts))
    assert any(NIXOS_FLAKE in c.item or NIXOS_CONFIGURATION in c.item for c in checks)


# ---------------------------------------------------------------- 4. git in /etc/nixos

GIT = shutil.which("git")
needs_git = pytest.mark.skipif(GIT is None, reason="no git binary")


class LocalHost:
    """Runs each command's raw value with sh locally (only in tmp dirs: FLAKE_DIR is patched)."""

    def __init__(self, env, fail_on: str | None = None):
        self.env, self.fail_on, self.commands = env, fail_on, []

    def run_shell_command(self, cmd):
        raw = cmd.get_raw_value()
        self.commands.append(raw)
        if self.fail_on and self.fail_on in raw:
            return False, SimpleNamespace(stdout_lines=[], stderr_lines=["error: simulated failure"])
        p = subprocess.run(["sh", "-c", raw], capture_output=True, text=True, env=self.env)
        return p.returncode == 0, SimpleNamespace(
            stdout_lines=p.stdout.splitlines(), stderr_lines=p.stderr.splitlines()
        )


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """``(root, nixos dir, env)``: a git repo at root with the flake dir ``root/etc/nixos``."""
    root = tmp_path / "repo"
    nixos = root / "etc" / "nixos"
    (nixos / "fleetforge").mkdir(parents=True)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    monkeypatch.setattr(nixos_activate, "FLAKE_DIR", str(nixos))
    (nixos / "configuration.nix").write_text("{ }\n")
    (nixos / "flake.nix").write_text("{ }\n")
    return root, nixos, env


def git(env, cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True).stdout


def init(env, where):
    git(env, where, "init", "-q")
    git(env, where, "add", "-A")
    git(env, where, "commit", "-qm", "init")


def managed(nixos):
    (nixos / "configuration.nix").write_text("{ imports = [ ./fleetforge ]; }\n")
    (nixos / "fleetforge" / "default.nix").write_text("{ }\n")
    return [str(nixos / "configuration.nix"), str(nixos / "fleetforge" / "default.nix")]


@needs_git
@pytest.mark.parametrize("where", ["nixos", "root"], ids=["own-repo", "subdir-of-larger-repo"])
def test_git_add_then_rollback_leaves_the_index_as_it_was(repo, where):
    root, nixos, env = repo
    init(env, nixos if where == "nixos" else root)
    files = managed(nixos)
    host = LocalHost(env)
    ok, detail, tracked = nixos_activate._git_track(host, files)
    assert ok and tracked == {files[0]}
    assert set(git(env, nixos, "ls-files").split()) == {"configuration.nix", "flake.nix", "fleetforge/default.nix"}
    (nixos / "configuration.nix").write_text("{ }\n")  # the file restore
    (nixos / "fleetforge" / "default.nix").unlink()
    nixos_activate._git_restore(host, files, tracked)
    assert set(git(env, nixos, "ls-files").split()) == {"configuration.nix", "flake.nix"}
    assert git(env, nixos, "status", "--porcelain") == ""


@needs_git
def test_no_git_repo_means_no_git_commands_beyond_the_probe(repo):
    _, nixos, env = repo
    host = LocalHost(env)
    assert nixos_activate._git_track(host, managed(nixos)) == (True, "", None)
    assert len(host.commands) == 1


@needs_git
def test_gitignored_fleetforge_dir_is_added_or_named(repo):
    """git refuses to add an ignored path; the error names it (not git's last hint line)."""
    _, nixos, env = repo
    (nixos / ".gitignore").write_text("fleetforge/\n")
    init(env, nixos)
    ok, detail, _ = nixos_activate._git_track(LocalHost(env), managed(nixos))
    assert ok or "are ignored" in detail, detail


@needs_git
def test_a_repo_git_refuses_to_read_is_not_taken_for_no_repo(repo):
    """Root running git in an /etc/nixos owned by the operator: 'dubious ownership', rc 128, is an
    error with git's words, not "no repository" (fleetforge does not override safe.directory)."""
    _, nixos, env = repo
    init(env, nixos)
    host = LocalHost({**env, "GIT_TEST_ASSUME_DIFFERENT_OWNER": "1"})
    ok, detail, tracked = nixos_activate._git_track(host, managed(nixos))
    assert not ok and "dubious ownership" in detail, detail


@needs_git
def test_a_failed_ls_files_does_not_make_rollback_untrack_the_operators_files(repo):
    """A failed ls-files is an error before anything is added, never an empty "tracked" set that
    would make the rollback `git rm --cached` the operator's configuration.nix."""
    _, nixos, env = repo
    (nixos / "configuration.nix").write_text("{ imports = [ ./fleetforge ]; }\n")
    init(env, nixos)
    files = managed(nixos)  # configuration.nix: same content as committed
    ok, detail, tracked = nixos_activate._git_track(LocalHost(env, fail_on=" ls-files "), files)
    assert not ok and "git ls-files in" in detail and tracked is None
    if ok and tracked is not None:
        (nixos / "fleetforge" / "default.nix").unlink()
        nixos_activate._git_restore(LocalHost(env), files, tracked)
        assert "configuration.nix" in git(env, nixos, "ls-files").split()
