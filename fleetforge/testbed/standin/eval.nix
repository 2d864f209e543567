# TEST STAND-IN, not NixOS: evaluates a NixOS configuration the way NixOS's module system would,
# for the options fleetforge writes, on a Debian test VM (and in unit tests) where nixpkgs is not
# available. Used by the stand-in `nixos-rebuild`.
#
#   lib.nix      nixpkgs lib: mkIf, mkMerge, mkOverride/mkDefault/mkForce, mkOrder/mkBefore/mkAfter,
#                option merge helpers and their error messages (lib/modules.nix, lib/options.nix)
#   types.nix    option types (lib/types.nix)
#   modules.nix  the module system: imports, the lazy `config` fixpoint, priorities, "does not exist"
#   options.nix  the declarations of the options fleetforge writes (nixos/modules/...), NixOS's own
#                definitions of them, and the release table
#
# Usage (prints JSON { "config": <every declared option, merged, defaults filled>, "warnings": [...] }):
#   nix-instantiate --eval --strict --json eval.nix --argstr release 24.05 --arg configuration /etc/nixos/configuration.nix
#   nix-instantiate --eval --strict --json eval.nix --argstr release 24.05 --arg flake /etc/nixos --argstr host NAME
# A failed assertion fails the evaluation with "Failed assertions:\n- message", as NixOS does;
# every other error with NixOS's own message text.
{ release ? "24.05"
, configuration ? null # a path (configuration.nix or a directory with default.nix)
, flake ? null # the directory of flake.nix (for git flakes: a copy holding only tracked files)
, host ? null # the nixosConfigurations attribute to evaluate
, flakeRef ? "path:${toString flake}" # how error messages name the flake
}:
let
  lib = import ./lib.nix { inherit release; };
  nixos = import ./options.nix { inherit lib release; };
  releaseOk = builtins.match "[0-9][0-9]\\.[0-9][0-9]" release != null;

  evalSystem = { modules, specialArgs ? { } }: lib.evalModules {
    inherit modules specialArgs;
    inherit (nixos) declarations aliases removed;
    builtinModules = nixos.modules;
  };

  # The `nixpkgs` flake input: only `lib.nixosSystem`, evaluating `modules` with the stand-in.
  standinNixpkgs = {
    outPath = "/run/nixos-standin/no-nixpkgs";
    lib = lib // {
      nixosSystem = { modules, specialArgs ? { }, extraModules ? [ ], ... }:
        evalSystem { modules = modules ++ extraModules; inherit specialArgs; } // { _type = "configuration"; };
    };
    nixosModules = { };
    legacyPackages = { };
  };

  fromFlake =
    let
      src = import (flake + "/flake.nix");
      declared = builtins.attrNames (src.inputs or { });
      wanted = builtins.filter (n: n != "self") (builtins.attrNames (builtins.functionArgs src.outputs));
      isNixpkgs = n: n == "nixpkgs" || lib.hasInfix "nixpkgs" (src.inputs.${n}.url or "");
      # other inputs (home-manager, ...) are empty attribute sets
      inputs = lib.genAttrs (lib.unique (declared ++ wanted)) (n: if isNixpkgs n then standinNixpkgs else { });
      self = outputs // { outPath = toString flake; inherit inputs; _type = "flake"; };
      outputs = src.outputs (inputs // { inherit self; });
    in
    if host == null then throw "the stand-in needs --argstr host NAME with --arg flake"
    else if outputs ? nixosConfigurations && outputs.nixosConfigurations ? ${host}
    then outputs.nixosConfigurations.${host}
    else throw "flake '${flakeRef}' does not provide attribute 'nixosConfigurations.${host}'";

  system =
    if !releaseOk then throw "the stand-in needs --argstr release YY.MM, got '${release}'"
    else if configuration != null then evalSystem { modules = [ configuration ]; }
    else if flake != null then fromFlake
    else throw "the stand-in needs --arg configuration PATH or --arg flake DIR";

  # nixos/modules/system/activation/top-level.nix
  failed = map (a: a.message) (builtins.filter (a: !a.assertion) system.config.assertions);
in
if failed != [ ] then
  throw "\nFailed assertions:\n${lib.concatMapStringsSep "\n" (m: "- ${m}") failed}"
else {
  config = system.output;
  warnings = system.config.warnings;
}
