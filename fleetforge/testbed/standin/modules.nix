# TEST STAND-IN, not nixpkgs: a small module system with the semantics of nixpkgs
# lib/modules.nix where fleetforge relies on them.
#
# - Modules: paths, functions of { config, options, lib, pkgs, modulesPath, ... } or attrsets;
#   `imports` followed (each path once, as nixpkgs keys modules by path); `config`/`options`
#   form or shorthand. Imports from `modulesPath` (nixpkgs' own modules, e.g.
#   installer/scan/not-detected.nix) are empty here: there is no nixpkgs.
# - `config` is the lazy fixpoint of the merged definitions, so a module may read
#   `config.networking.firewall.backend` while defining other options.
# - Properties: mkMerge and mkIf are pushed down into attribute sets before they are merged
#   (pushDownProperties), so `mkIf config.x { a = 1; }` needs only the names of its content;
#   at an option, mkIf is discharged, then only the definitions with the best (lowest)
#   priority are kept (filterOverrides; an option's `default` has priority 1500), then list
#   definitions are ordered by mkOrder (sortProperties), then checked and merged by the type.
# - Declared namespaces: an undeclared name is "The option `X' does not exist." where the
#   namespace is strict (`_strict = true`); a freeform submodule merges it with its freeform
#   type; elsewhere (options the stand-in does not model) it is merged leniently.
{ lib }:
let
  inherit (lib)
    all any attrNames concatMap elem filter foldl' head isAttrs isBool isFunction isList isPath
    isString length mapAttrs mkIf mkOverride mkOptionDefault optional showDefs showOption
    sort types zipAttrsWith
    ;

  pushDownProperties = cfg:
    if cfg._type or "" == "merge" then concatMap pushDownProperties cfg.contents
    else if cfg._type or "" == "if" then
      map (mapAttrs (n: v: mkIf cfg.condition v)) (pushDownProperties cfg.content)
    else if cfg._type or "" == "override" then
      map (mapAttrs (n: v: mkOverride cfg.priority v)) (pushDownProperties cfg.content)
    else [ cfg ];

  dischargeProperties = def:
    if def._type or "" == "merge" then concatMap dischargeProperties def.contents
    else if def._type or "" == "if" then
      if isBool def.condition then (if def.condition then dischargeProperties def.content else [ ])
      else throw "‘mkIf’ called with a non-Boolean condition"
    else [ def ];

  # Keep the definitions with the best priority (lowest number), overrides stripped.
  filterOverrides = defs:
    let
      prio = def: if def.value._type or "" == "override" then def.value.priority else lib.defaultOverridePriority;
      highest = foldl' (p: d: lib.min p (prio d)) 9999 defs;
      strip = def: if def.value._type or "" == "override" then def // { value = def.value.content; } else def;
    in { inherit highest; values = concatMap (d: optional (prio d == highest) (strip d)) defs; };

  # Order definitions by mkOrder priority (stable: equal priorities keep module order).
  sortProperties = defs:
    let
      strip = def: if def.value._type or "" == "order"
        then def // { value = def.value.content; priority = def.value.priority; }
        else def // { priority = lib.defaultOrderPriority; };
    in sort (a: b: a.priority < b.priority) (map strip defs);

  # defs: [ { file; value; } ] for one option. Returns { isDefined; mergedValue; highestPrio; }.
  mergeDefinitions = loc: type: defs:
    let
      discharged = concatMap (d: map (v: { inherit (d) file; value = v; }) (dischargeProperties d.value)) defs;
      filtered = filterOverrides discharged;
      ordered = if any (d: d.value._type or "" == "order") filtered.values
        then sortProperties filtered.values else filtered.values;
      isDefined = ordered != [ ];
      invalid = filter (d: !(type.check d.value)) ordered;
      mergedValue =
        if !isDefined then
          throw "The option `${showOption loc}' was accessed but has no value defined. Try setting the option."
        else if invalid == [ ] then type.merge loc ordered
        else throw "A definition for option `${showOption loc}' is not of type `${type.description}'. Definition values:${showDefs invalid}";
    in { inherit isDefined mergedValue; highestPrio = filtered.highest; };

  # One declared option: its definitions plus its default (at mkOptionDefault), then `apply`.
  evalOption = loc: opt: defs:
    let
      withDefault = defs ++ optional (opt ? default)
        { file = "<default of ${showOption loc}>"; value = mkOptionDefault opt.default; };
      res = mergeDefinitions loc (opt.type or types.unspecified) withDefault;
    in res // { value = if opt ? apply then opt.apply res.mergedValue else res.mergedValue; };

  # A mkIf/mkOverride/mkMerge-wrapped attrset (a namespace, not an option value)?
  nodeLike = v:
    isAttrs v && (if !(v ? _type) then true
      else if v._type == "if" || v._type == "override" then nodeLike v.content
      else if v._type == "merge" then all nodeLike v.contents
      else false);

  # Merge the definitions `defs` of the attribute set at `loc`, declared by `decls`.
  # mode: "strict" | "lenient" | the element type of a freeform submodule.
  mergeNode = { loc, decls, mode, defs, root ? null }:
    let
      pushed = concatMap (d: map (v: { inherit (d) file; value = v; }) (pushDownProperties d.value)) defs;
      bad = filter (d: !(isAttrs d.value) || d.value ? _type) pushed;
      byName = zipAttrsWith (n: vs: vs) (map (d: mapAttrs (n: v: { inherit (d) file; value = v; }) d.value) pushed);
      declared = removeAttrs decls [ "_strict" ];
      undeclared = filter (n: !(declared ? ${n})) (attrNames byName);
      strict = mode == "strict" || (decls._strict or false);
      sub = n: loc ++ [ n ];
      fromDecls = mapAttrs (n: decl:
        if decl._type or "" == "option" then (evalOption (sub n) decl (byName.${n} or [ ])).value
        else if decl._type or "" == "alias" then lib.getAttrFromPath decl.to root
        else if decl._type or "" == "removed" then
          throw "The option `${showOption (sub n)}' can no longer be used since it's been removed. ${decl.message}"
        else mergeNode { loc = sub n; decls = decl; mode = if decl._strict or false then "strict" else "lenient";
                         defs = byName.${n} or [ ]; inherit root; }) declared;
      extra =
        if strict then
          (if undeclared == [ ] then { } else
            let n = head undeclared; in
            throw "The option `${showOption (sub n)}' does not exist. Definition values:${showDefs [ (head byName.${n}) ]}")
        else if mode == "lenient" then
          lib.genAttrs undeclared (n:
            if all (d: nodeLike d.value) byName.${n}
            then mergeNode { loc = sub n; decls = { }; mode = "lenient"; defs = byName.${n}; inherit root; }
            else (evalOption (sub n) { type = types.lenient; } byName.${n}).value)
        else
          let merged = map (n: { name = n; r = evalOption (sub n) { type = mode; } byName.${n}; }) undeclared; in
          builtins.listToAttrs (map (m: { inherit (m) name; value = m.r.value; }) (filter (m: m.r.isDefined) merged));
    in
    if bad != [ ] then
      throw "A definition for option `${showOption loc}' is not of type `attribute set'. Definition values:${showDefs bad}"
    else fromDecls // extra;

  # -- collecting modules -----------------------------------------------------------------------
  modulesPath = "/run/nixos-standin/no-nixpkgs/nixos/modules";
  loadModule = args: item:
    let
      m = item.module;
      isFile = isPath m || isString m;
      file = if isFile then toString m else item.parentFile;
      raw = if isFile then import m else m;
      called = if isFunction raw then raw args else raw;
      structured = isAttrs called && (called ? config || called ? options) && !(called ? _type);
    in
    if isFile && lib.hasPrefix modulesPath (toString m) then { inherit file; imports = [ ]; options = { }; config = { }; }
    else {
      file = called._file or file;
      imports = if isAttrs called then called.imports or [ ] else [ ];
      options = if structured then called.options or { } else { };
      config = if structured then called.config or { }
        else removeAttrs called [ "_file" "key" "disabledModules" "imports" "require" "_class" "freeformType" ];
    };
  collectModules = args: roots:
    let
      item = parentFile: parentKey: i: m: rec {
        key = if isPath m || isString m then toString m else "${parentKey}:anon-${toString i}";
        module = m;
        inherit parentFile;
        loaded = loadModule args { inherit module parentFile; };
      };
    in map (i: i.loaded) (builtins.genericClosure {
      startSet = lib.imap0 (item "<unknown-file>" "root") roots;
      operator = it: lib.imap0 (item it.loaded.file it.key) it.loaded.imports;
    });

  # Definitions found at `path` (pushing properties down on the way), for aliases and removals.
  defsAt = path: defs: if path == [ ] then defs else defsAt (lib.tail path) (concatMap (d:
    concatMap (v: optional (isAttrs v && v ? ${head path}) { inherit (d) file; value = v.${head path}; })
      (pushDownProperties d.value)) defs);
  definedAt = path: defs: filter (d: dischargeProperties d.value != [ ]) (defsAt path defs);

  # mkRenamedOptionModule: definitions of `from` become definitions of `to`, with its warning.
  renamedModule = defs: { from, to }: {
    _file = "<nixpkgs: mkRenamedOptionModule ${showOption from}>";
    config = lib.mkMerge [
      (lib.setAttrByPath to (mkIf (definedAt from defs != [ ]) (lib.mkMerge (map (d: d.value) (defsAt from defs)))))
      { warnings = map (d: "The option `${showOption from}' defined in `${d.file}' has been renamed to `${showOption to}'.")
          (definedAt from defs); }
    ];
  };
  # mkRemovedOptionModule: defining it fails an assertion.
  removedModule = defs: { path, message }: {
    _file = "<nixpkgs: mkRemovedOptionModule ${showOption path}>";
    config.assertions = map (d: {
      assertion = false;
      message = "The option definition `${showOption path}' in `${d.file}' no longer has any effect; please remove it.\n${message}";
    }) (definedAt path defs);
  };

  # Options that nix-instantiate prints: every declared option but those marked `output = false`
  # or whose `output = config: BOOL` is false for the evaluated `root` config (an option NixOS
  # reads only under its module's enable, and which has no value otherwise).
  # Forcing each namespace (seq) runs its "does not exist" check even when nothing in it is printed.
  outputOf = root: decls: cfg: builtins.seq cfg (builtins.listToAttrs (concatMap (n:
    let d = decls.${n}; shown = d.output or true; in
    if n == "_strict" || elem (d._type or "") [ "alias" "removed" ] then [ ]
    else if d._type or "" == "option" then optional (if isFunction shown then shown root else shown)
      { name = n; value = (d.type or types.unspecified).output cfg.${n}; }
    else [ { name = n; value = outputOf root d cfg.${n}; } ]) (attrNames decls)));

  # declarations: the option tree (options.nix); builtinModules: NixOS's own definitions;
  # aliases/removed: [ { from; to; } ] / [ { path; message; } ] (declared as markers too).
  evalModules = { modules, declarations, builtinModules ? [ ], aliases ? [ ], removed ? [ ], specialArgs ? { } }:
    let
      args = { inherit config options lib modulesPath; pkgs = { inherit lib; }; } // specialArgs;
      collected = collectModules args (modules ++ builtinModules);
      defs = map (m: { inherit (m) file; value = m.config; }) collected;
      special = collectModules args (map (renamedModule defs) aliases ++ map (removedModule defs) removed);
      options = foldl' lib.recursiveUpdate declarations (map (m: m.options) collected);
      config = mergeNode {
        loc = [ ]; decls = options; mode = "lenient"; root = config;
        defs = defs ++ map (m: { inherit (m) file; value = m.config; }) special;
      };
    in { inherit config options; output = outputOf config declarations config; };
in
{
  inherit evalModules evalOption mergeDefinitions mergeNode filterOverrides pushDownProperties
    dischargeProperties;
}
