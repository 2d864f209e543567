# TEST STAND-IN, not nixpkgs: option types as nixpkgs lib/types.nix declares them (name,
# description, descriptionClass, check, merge), for the types the options in options.nix use.
# Descriptions are phrased like nixpkgs (optionDescriptionPhrase), so error messages read like
# NixOS's: "A definition for option `X' is not of type `null or (unsigned integer, meaning >=0)'".
# Submodules are evaluated by the stand-in's own mergeNode (modules.nix), not by evalModules.
{ lib, release }:
let
  inherit (lib)
    all concatLists elem filter getValues head imap1 isAttrs isBool isFloat isFunction isInt
    isList isPath isString last length removeAttrs mapAttrs mergeEqualOption mergeOneOption optional
    showFiles showOption getFiles concatMapStringsSep count
    ;
  # lib.types.path became pathWith { absolute = true; } ("absolute path") in nixpkgs PR #353136,
  # after 24.11 (inferred from the PR date); before it the description was "path".
  pathDescription = if lib.versionAtLeast release "25.05" then "absolute path" else "path";

  mkOptionType = { name, description ? name, descriptionClass ? null, check ? (x: true),
                   merge ? mergeEqualOption, extra ? { } }:
    { _type = "option-type"; inherit name description descriptionClass check merge;
      # the option value as nix-instantiate prints it: submodules leave out options marked
      # `output = false` (packages and the like the stand-in has no stand-in for)
      output = v: v; } // extra;
  phrase = ok: t: if ok (t.descriptionClass or null) then t.description else "(${t.description})";
  addCheck = t: c: t // { check = x: t.check x && c x; };
  between = lo: hi: "between ${toString lo} and ${toString hi} (both inclusive)";
  unsign = bits: hi: addCheck types.int (x: x >= 0 && x <= hi) // {
    name = "unsignedInt${toString bits}";
    description = "${toString bits} bit unsigned integer; ${between 0 hi}";
  };
  showEnum = v: if isString v then "\"${v}\"" else if isBool v then lib.boolToString v else toString v;

  types = rec {
    raw = mkOptionType { name = "raw"; description = "raw value"; descriptionClass = "noun"; merge = mergeOneOption; };
    unspecified = mkOptionType { name = "unspecified"; description = "unspecified value"; descriptionClass = "noun";
                                 merge = lib.mergeEqualOption; };
    anything = mkOptionType {
      name = "anything"; descriptionClass = "noun";
      merge = loc: defs:
        if all (d: isAttrs d.value && !(d.value ? outPath)) defs then (attrsOf anything).merge loc defs
        else if all (d: isList d.value) defs then concatLists (getValues defs)
        else mergeEqualOption loc defs;
    };
    # Stand-in only: what a namespace the stand-in does not declare gets (nixpkgs has no such
    # type; there an undeclared option is an error): lists concatenate, strings join with "\n"
    # (like types.lines), anything else must be equal.
    lenient = mkOptionType {
      name = "lenient"; description = "stand-in lenient value";
      merge = loc: defs:
        if all (d: isList d.value) defs then concatLists (getValues defs)
        else if all (d: isString d.value) defs then lib.concatStringsSep "\n" (getValues defs)
        else mergeEqualOption loc defs;
    };
    bool = mkOptionType { name = "bool"; description = "boolean"; descriptionClass = "noun"; check = isBool; };
    int = mkOptionType { name = "int"; description = "signed integer"; descriptionClass = "noun"; check = isInt; };
    float = mkOptionType { name = "float"; description = "floating point number"; descriptionClass = "noun"; check = isFloat; };
    ints = {
      unsigned = addCheck int (x: x >= 0) // { name = "unsignedInt"; description = "unsigned integer, meaning >=0";
                                              descriptionClass = "nonRestrictiveClause"; };
      positive = addCheck int (x: x > 0) // { name = "positiveInt"; description = "positive integer, meaning >0";
                                             descriptionClass = "nonRestrictiveClause"; };
      u8 = unsign 8 255;
      u16 = unsign 16 65535;
      u32 = unsign 32 4294967295;
      between = lo: hi: addCheck int (x: x >= lo && x <= hi) // { name = "intBetween"; description = "integer ${between lo hi}"; };
    };
    port = ints.u16;
    str = mkOptionType { name = "str"; description = "string"; descriptionClass = "noun"; check = isString; };
    nonEmptyStr = addCheck str (x: builtins.match "[ \t\n]*" x == null) // { name = "nonEmptyStr"; description = "non-empty string"; };
    singleLineStr = mkOptionType {
      name = "singleLineStr"; description = "(optionally newline-terminated) single-line string"; descriptionClass = "noun";
      check = x: isString x && builtins.match "[^\n\r]*\n?" x != null;
      merge = loc: defs: lib.removeSuffix "\n" (mergeEqualOption loc defs);
    };
    strMatching = pattern: addCheck str (x: builtins.match pattern x != null) // {
      name = "strMatching"; description = "string matching the pattern ${pattern}"; };
    separatedString = sep: mkOptionType {
      name = "separatedString"; descriptionClass = "noun"; check = isString;
      description = if sep == "" then "Concatenated string" else "strings concatenated with ${builtins.toJSON sep}";
      merge = loc: defs: lib.concatStringsSep sep (getValues defs);
    };
    lines = separatedString "\n";
    commas = separatedString ",";
    path = mkOptionType {
      name = "path"; description = pathDescription; descriptionClass = "noun";
      check = x: lib.isStringLike x && builtins.substring 0 1 (toString x) == "/";
    };
    package = mkOptionType { name = "package"; descriptionClass = "noun"; merge = mergeOneOption;
                             check = x: lib.isDerivation x || lib.isStringLike x; };
    attrs = mkOptionType { name = "attrs"; description = "attribute set"; check = isAttrs;
                           merge = loc: lib.foldl' (res: def: res // def.value) { }; };
    enum = values: mkOptionType {
      name = "enum"; check = x: elem x values;
      description = if length values == 1 then "value ${showEnum (head values)} (singular enum)"
                    else "one of ${concatMapStringsSep ", " showEnum values}";
      descriptionClass = if length values < 2 then "noun" else "conjunction";
    };
    either = t1: t2: mkOptionType {
      name = "either"; descriptionClass = "conjunction";
      description =
        if t1.descriptionClass or null == "nonRestrictiveClause" then
          "${t1.description}, or ${phrase (c: c == "noun" || c == "conjunction") t2}"
        else
          "${phrase (c: c == "noun" || c == "conjunction") t1} or ${phrase (c: c == "noun" || c == "conjunction" || c == "composite") t2}";
      check = x: t1.check x || t2.check x;
      merge = loc: defs:
        if all (d: t1.check d.value) defs then t1.merge loc defs
        else if all (d: t2.check d.value) defs then t2.merge loc defs
        else mergeOneOption loc defs;
      extra.output = v: if t1.check v then t1.output v else t2.output v;
    };
    oneOf = ts: lib.foldl' either (head ts) (lib.tail ts);
    nullOr = t: mkOptionType {
      name = "nullOr"; descriptionClass = "conjunction";
      description = "null or ${phrase (c: c == "noun" || c == "conjunction") t}";
      check = x: x == null || t.check x;
      merge = loc: defs:
        let nulls = count (d: d.value == null) defs; in
        if nulls == length defs then null
        else if nulls != 0 then
          throw "The option `${showOption loc}' is defined both null and not null, in ${showFiles (getFiles defs)}."
        else t.merge loc defs;
      extra = { elemType = t; output = v: if v == null then null else t.output v; };
    };
    # listOf merges element by element, so an element of the wrong type is reported at
    # `X."[definition N-entry M]"', as nixpkgs does.
    listOf = t: mkOptionType {
      name = "listOf"; descriptionClass = "composite"; check = isList;
      description = "list of ${phrase (c: c == "noun" || c == "composite") t}";
      merge = loc: defs: concatLists (imap1 (n: def: concatLists (imap1 (m: v:
        let r = lib.mergeDefinitions (loc ++ [ "[definition ${toString n}-entry ${toString m}]" ]) t
                  [ { inherit (def) file; value = v; } ];
        in optional r.isDefined r.mergedValue) def.value)) defs);
      extra = { elemType = t; output = map t.output; };
    };
    nonEmptyListOf = t: let l = addCheck (listOf t) (x: x != [ ]); in
      l // { description = "non-empty ${phrase (c: c == "noun") l}"; };
    # attrsOf: each attribute merged on its own; one whose definitions all vanish (mkIf false) is
    # left out, as with nixpkgs' (non-lazy) attrsOf.
    attrsOf = t: mkOptionType {
      name = "attrsOf"; descriptionClass = "composite"; check = isAttrs;
      description = "attribute set of ${phrase (c: c == "noun" || c == "composite") t}";
      merge = loc: defs:
        let
          byName = builtins.zipAttrsWith (n: vs: vs)
            (map (d: mapAttrs (n: v: { inherit (d) file; value = v; }) d.value) defs);
          merged = mapAttrs (n: ds: lib.evalOption (loc ++ [ n ]) { type = t; } ds) byName;
        in mapAttrs (n: r: r.value) (lib.filterAttrs (n: r: r.isDefined) merged);
      extra = { elemType = t; output = mapAttrs (n: t.output); };
    };
    # submodule: `options` is an attrset of declarations, or a function of { name } (the
    # attribute name, for defaults like fileSystems.<name>.mountPoint). Options not declared
    # there are errors, unless `freeformType` (an attrsOf type) takes them.
    submoduleWith = { options, freeformType ? null, description ? null }: mkOptionType {
      name = "submodule";
      description = if description != null then description
                    else if freeformType != null then freeformType.description else "submodule";
      check = x: isAttrs x || isFunction x || path.check x;
      merge = loc: defs:
        let
          decls = if isFunction options then options { name = last loc; } else options;
          load = v: if isFunction v then v { inherit lib; name = last loc; config = result; }
                    else if isPath v || isString v then import v else v;
          result = lib.mergeNode {
            inherit loc decls;
            mode = if freeformType == null then "strict" else freeformType.elemType;
            defs = map (d: d // { value = load d.value; }) defs;
          };
        in result;
      extra.output = v:
        let
          decls = if isFunction options then options { name = "<name>"; } else options;
          shown = n: lib.isOption decls.${n} && (decls.${n}.output or true);
          hidden = filter (n: lib.isOption decls.${n} && !(shown n)) (builtins.attrNames decls);
          kept = removeAttrs v hidden;
        in kept // mapAttrs (n: o: (o.type or unspecified).output kept.${n})
          (lib.filterAttrs (n: o: lib.isOption o && shown n && kept ? ${n}) decls);
    };
    submodule = options: submoduleWith { inherit options; };
  };
in
types
