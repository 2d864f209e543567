"""Which ``nixosConfigurations`` entry of ``/etc/nixos/flake.nix`` is the host's, and whether
fleetforge can reach it (``fleetforge.nixos.flake``): the flake text is host output, read but never
copied into a command; anything but the two supported shapes is refused with what to add by hand.
"""

import pytest

from fleetforge.models import HostFacts, ManagedFile
from fleetforge.nixos.flake import FlakeTarget, flake_target, host_flake
from fleetforge.paths import NIXOS_FLAKE
from fleetforge.testbed.nixos_standin import FLAKE
from tests.conftest import facts_from

GENERATED = FLAKE.format(name="web-1", release="24.05")  # what nixos-generate-config --flake writes

SET_FORM = """{
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.05";
  outputs = { nixpkgs, ... }: {
    nixosConfigurations = {
      db-1 = nixpkgs.lib.nixosSystem { modules = [ ./db.nix ]; };
      "web-1" = nixpkgs.lib.nixosSystem {
        system = "x86_64-linux";
        modules = [ ./hardware.nix ./configuration.nix ];
      };
    };
  };
}
"""


def test_the_generated_flake_reaches_the_host_through_configuration_nix():
    assert flake_target(GENERATED, "web-1") == FlakeTarget("web-1", via_configuration=True)
    assert flake_target(GENERATED, "web-1").ref == "/etc/nixos#web-1"


def test_an_entry_in_a_nixosconfigurations_set_is_found_by_name_quoted_or_not():
    assert flake_target(SET_FORM, "web-1").via_configuration
    with pytest.raises(ValueError, match=r"nixosConfigurations.db-1 .* lists neither ./configuration.nix"):
        flake_target(SET_FORM, "db-1")


def test_an_entry_listing_fleetforge_itself_keeps_configuration_nix_as_it_is():
    flake = GENERATED.replace("./configuration.nix", "./hardware.nix ./fleetforge")
    assert flake_target(flake, "web-1") == FlakeTarget("web-1", via_configuration=False)


@pytest.mark.parametrize(
    ("flake", "attribute", "message"),
    [
        (GENERATED, "web-2", "has no nixosConfigurations.web-2 that fleetforge can read; set host data"),
        # configuration.nix only in another host's entry, in a comment, in a string or under another name
        (SET_FORM.replace("./hardware.nix ./configuration.nix", "./web.nix"), "web-1", "lists neither"),
        (GENERATED.replace("[ ./configuration.nix ]", "[ ./c.nix ] # ./configuration.nix"), "web-1", "neither"),
        (GENERATED.replace("[ ./configuration.nix ]", '[ ./c.nix ]; x = "./configuration.nix"'), "web-1", "neither"),
        (GENERATED.replace("./configuration.nix", "./configuration.nix.old"), "web-1", "neither"),
        (GENERATED.replace("./configuration.nix", "./hosts/configuration.nix"), "web-1", "neither"),
        # built by a function: not something to guess
        (
            '{ outputs = { nixpkgs, ... }: { nixosConfigurations = nixpkgs.lib.genAttrs [ "web-1" ] mk; }; }',
            "web-1",
            "has no",
        ),
        # the entry named only inside a string or a comment
        ('{ outputs = _: { x = "nixosConfigurations.web-1 = [ ./configuration.nix ];"; }; }', "web-1", "has no"),
        ("{ outputs = _: { /* nixosConfigurations.web-1 = ./configuration.nix; */ }; }", "web-1", "has no"),
    ],
    ids=[
        "other-host",
        "other-module",
        "comment",
        "string",
        "other-file",
        "subdir",
        "function",
        "in-string",
        "in-comment",
    ],
)
def test_anything_else_is_refused_with_what_to_add_by_hand(flake, attribute, message):
    with pytest.raises(ValueError, match=message) as info:
        flake_target(flake, attribute)
    assert "./fleetforge" in str(info.value) or "nixos_flake_host" in str(info.value)


@pytest.mark.parametrize("attribute", ['web"1', "web.1", "web#1", "1web", "", "web 1", "$(reboot)"])
def test_a_name_that_is_not_a_plain_nix_name_is_refused_before_it_reaches_a_command(attribute):
    with pytest.raises(ValueError, match="expected letters, digits, _ and -"):
        flake_target(GENERATED, attribute)


def _facts(flake: str | None, hostname: str | None) -> HostFacts:
    facts = facts_from("qemu-virtio-blk-vda-bios")  # only files and os.hostname are read
    files = dict(facts.files)
    files[NIXOS_FLAKE] = None if flake is None else ManagedFile(sha256="0" * 64, content=flake)
    return facts.model_copy(update={"files": files, "os": facts.os.model_copy(update={"hostname": hostname})})


def test_host_flake_uses_host_data_then_the_host_name_and_none_without_a_flake():
    assert host_flake(_facts(None, "web-1"), None) is None
    assert host_flake(_facts(GENERATED, "web-1"), None).attribute == "web-1"
    assert host_flake(_facts(SET_FORM, "something-else"), "web-1").attribute == "web-1"
    with pytest.raises(ValueError, match="set host data nixos_flake_host"):
        host_flake(_facts(GENERATED, None), None)
