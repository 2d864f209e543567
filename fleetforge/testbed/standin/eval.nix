# TEST STAND-IN, not NixOS: a minimal module loader for `nixos-rebuild` on a Debian test VM.
# Imports a NixOS configuration, follows `imports` (paths, directories, attrsets), calls each
# module with { config, pkgs, lib, ... } stand-ins, and merges the results (attrsets recursively,
# lists concatenated, strings joined with a newline, like types.lines). No nixpkgs, no option
# declarations: only the options fleetforge writes are type-checked, by nixos-rebuild.
{ configuration }:
let
  lib = {
    mkDefault = x: x;
    mkForce = x: x;
    mkIf = cond: x: if cond then x else { };
  };
  args = { config = { }; pkgs = { }; inherit lib; modulesPath = "/run/nixos-standin/modules"; };
  load = m:
    let v = if builtins.isPath m || builtins.isString m then import m else m;
    in if builtins.isFunction v then v args else v;
  collect = m:
    let v = load m;
    in [ (removeAttrs v [ "imports" ]) ] ++ builtins.concatMap collect (v.imports or [ ]);
  merge = a: b:
    a // builtins.mapAttrs (name: v:
      if !(a ? ${name}) then v
      else if builtins.isAttrs v && builtins.isAttrs a.${name} then merge a.${name} v
      else if builtins.isList v && builtins.isList a.${name} then a.${name} ++ v
      else if builtins.isString v && builtins.isString a.${name} then a.${name} + "\n" + v
      else throw "conflicting definitions of option ${name}") b;
in
builtins.foldl' merge { } (collect configuration)
