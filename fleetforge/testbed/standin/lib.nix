# TEST STAND-IN, not nixpkgs: the part of nixpkgs' `lib` that NixOS modules commonly use, and
# what the stand-in module system needs. Written from nixpkgs lib/modules.nix (mkIf, mkMerge,
# mkOverride, mkOrder and their priorities), lib/options.nix (mkOption, mergeEqualOption,
# mergeOneOption, showOption, showDefs and their messages) and lib/generators.nix (toPretty, used
# to print definition values in errors). `release` ("YY.MM") selects the lib version's wording
# where it changed (types.nix).
{ release }:
let
  b = builtins;
  lib = rec {
    inherit (b)
      all any attrNames attrValues concatLists concatMap concatStringsSep deepSeq elem elemAt
      filter foldl' functionArgs genList getAttr hasAttr head intersectAttrs isAttrs isBool
      isFloat isFunction isInt isList isPath isString length listToAttrs map mapAttrs match
      pathExists readFile removeAttrs replaceStrings seq sort split stringLength substring tail
      toJSON toString tryEval typeOf zipAttrsWith
      ;
    # nixpkgs' lib is also reachable by sub-library (lib.strings.hasPrefix, lib.lists.optional...).
    strings = lib;
    lists = lib;
    attrsets = lib;
    trivial = lib;
    options = lib;
    modules = lib;

    # -- properties and priorities (lib/modules.nix) ----------------------------------------
    defaultOverridePriority = 100; # a plain definition
    mkOverride = priority: content: { _type = "override"; inherit priority content; };
    mkOptionDefault = mkOverride 1500; # an option's own `default`
    mkDefault = mkOverride 1000;
    mkImageMediaOverride = mkOverride 60;
    mkForce = mkOverride 50;
    mkVMOverride = mkOverride 10;
    mkIf = condition: content: { _type = "if"; inherit condition content; };
    mkMerge = contents: { _type = "merge"; inherit contents; };
    defaultOrderPriority = 1000;
    mkOrder = priority: content: { _type = "order"; inherit priority content; };
    mkBefore = mkOrder 500;
    mkAfter = mkOrder 1500;

    # -- declarations (lib/options.nix) -----------------------------------------------------
    mkOption = attrs: attrs // { _type = "option"; };
    mkEnableOption = name: mkOption {
      default = false;
      type = types.bool;
      description = "Whether to enable ${name}.";
    };
    isOption = x: (x._type or "") == "option";
    isType = t: x: (x._type or "") == t;
    mdDoc = x: x;
    literalExpression = text: { _type = "literalExpression"; inherit text; };
    literalMD = text: { _type = "literalMD"; inherit text; };
    types = import ./types.nix { inherit lib release; };

    # -- plain helpers -------------------------------------------------------------------------
    id = x: x;
    const = x: _: x;
    flip = f: a: c: f c a;
    max = x: y: if x > y then x else y;
    min = x: y: if x < y then x else y;
    boolToString = x: if x then "true" else "false";
    optional = c: x: if c then [ x ] else [ ];
    optionals = c: xs: if c then xs else [ ];
    optionalString = c: s: if c then s else "";
    optionalAttrs = c: a: if c then a else { };
    concatStrings = concatStringsSep "";
    concatMapStrings = f: xs: concatStrings (map f xs);
    concatMapStringsSep = sep: f: xs: concatStringsSep sep (map f xs);
    imap0 = f: xs: genList (i: f i (elemAt xs i)) (length xs);
    imap1 = f: xs: genList (i: f (i + 1) (elemAt xs i)) (length xs);
    last = xs: elemAt xs (length xs - 1);
    init = xs: genList (elemAt xs) (length xs - 1);
    take = n: xs: genList (elemAt xs) (min n (length xs));
    count = p: foldl' (c: x: if p x then c + 1 else c) 0;
    toList = x: if isList x then x else [ x ];
    flatten = x: if isList x then concatMap flatten x else [ x ];
    unique = foldl' (acc: e: if elem e acc then acc else acc ++ [ e ]) [ ];
    range = first: last': if first > last' then [ ] else genList (n: first + n) (last' - first + 1);
    hasPrefix = p: s: substring 0 (stringLength p) s == p;
    hasSuffix = p: s: let n = stringLength s - stringLength p; in n >= 0 && substring n (-1) s == p;
    hasInfix = i: s: match ".*${escapeRegex i}.*" s != null;
    regexSpecials = [ "\\" "[" "]" "{" "}" "(" ")" "." "*" "+" "?" "^" "$" "|" ];
    escapeRegex = replaceStrings regexSpecials (map (c: "\\" + c) regexSpecials);
    removePrefix = p: s: if hasPrefix p s then substring (stringLength p) (-1) s else s;
    removeSuffix = p: s: if hasSuffix p s then substring 0 (stringLength s - stringLength p) s else s;
    splitString = sep: s: filter isString (split (escapeRegex sep) s);
    lower = [ "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m" "n" "o" "p" "q" "r" "s" "t" "u" "v" "w" "x" "y" "z" ];
    upper = [ "A" "B" "C" "D" "E" "F" "G" "H" "I" "J" "K" "L" "M" "N" "O" "P" "Q" "R" "S" "T" "U" "V" "W" "X" "Y" "Z" ];
    toLower = replaceStrings upper lower;
    toUpper = replaceStrings lower upper;
    versionAtLeast = v: w: b.compareVersions v w >= 0;
    versionOlder = v: w: b.compareVersions v w < 0;
    isStringLike = x: isString x || isPath x || x ? outPath || x ? __toString;
    isDerivation = x: (x.type or null) == "derivation";
    nameValuePair = name: value: { inherit name value; };
    mapAttrsToList = f: a: map (n: f n a.${n}) (attrNames a);
    filterAttrs = p: a: listToAttrs (concatMap (n: optional (p n a.${n}) (nameValuePair n a.${n})) (attrNames a));
    genAttrs = names: f: listToAttrs (map (n: nameValuePair n (f n)) names);
    catAttrs = b.catAttrs;
    recursiveUpdate = lhs: rhs: lhs // mapAttrs (n: v:
      if isAttrs v && isAttrs (lhs.${n} or null) && !(isOption v) then recursiveUpdate lhs.${n} v else v) rhs;
    setAttrByPath = path: v: if path == [ ] then v else { ${head path} = setAttrByPath (tail path) v; };
    attrByPath = path: default: set:
      if path == [ ] then set
      else if isAttrs set && set ? ${head path} then attrByPath (tail path) default set.${head path}
      else default;
    getAttrFromPath = path: set:
      attrByPath path (throw "cannot find attribute `${concatStringsSep "." path}'") set;
    fileContents = file: removeSuffix "\n" (readFile file);

    # -- messages (lib/options.nix, lib/generators.nix) ---------------------------------------
    prioritySuggestion = "Use `lib.mkForce value` or `lib.mkDefault value` to change the priority on any of these definitions.\n";
    nixKeywords = [ "assert" "else" "if" "in" "inherit" "let" "or" "rec" "then" "with" ];
    escapeNixString = s: "\"" + replaceStrings [ "\\" "\"" "\${" "\n" "\t" "\r" ] [ "\\\\" "\\\"" "\\\${" "\\n" "\\t" "\\r" ] s + "\"";
    escapeNixIdentifier = s:
      if match "[a-zA-Z_][a-zA-Z0-9_'-]*" s != null && !(elem s nixKeywords) then s else escapeNixString s;
    showOption = parts: concatMapStringsSep "." (p:
      if p == "*" || match "<(.*)>" p != null then p else escapeNixIdentifier p) parts;
    showFiles = files: concatStringsSep " and " (map (f: "`${f}'") files);
    getValues = catAttrs "value";
    getFiles = catAttrs "file";
    # lib.generators.toPretty { multiline = true; }
    toPretty = indent: v:
      let
        intro = "\n${indent}  ";
        outro = "\n${indent}";
        lines = filter isString (split "\n" v);
        escLine = replaceStrings [ "\${" "''" ] [ "''\${" "'''" ];
        ml = map escLine lines;
      in
      if isString v then
        (if length lines > 1 then
          "''" + intro + concatStringsSep intro (init ml)
          + (if last ml == "" then outro else intro + last ml) + "''"
        else escapeNixString v)
      else if isInt v || isFloat v then toString v
      else if isBool v then boolToString v
      else if v == null then "null"
      else if isPath v then toString v
      else if isFunction v then "<function>"
      else if isList v then
        (if v == [ ] then "[ ]" else "[" + intro + concatMapStringsSep intro (toPretty "${indent}  ") v + outro + "]")
      else if isDerivation v then "<derivation ${v.name or "?"}>"
      else if v == { } then "{ }"
      else "{" + intro + concatStringsSep intro (mapAttrsToList (n: x:
        "${escapeNixIdentifier n} = ${toPretty "${indent}  " x};") v) + outro + "}";
    showDefs = defs: concatMapStrings (def:
      let
        pretty = tryEval (toPretty "" def.value);
        lines = filter isString (split "\n" pretty.value);
        value = concatStringsSep "\n    " (take 5 lines ++ optional (length lines > 5) "...");
        result = if !pretty.success then "" else if length lines > 1 then ":\n    " + value else ": " + value;
      in "\n- In `${def.file}'${result}") defs;
    mergeEqualOption = loc: defs:
      if length defs == 1 then (head defs).value
      else (foldl' (first: def:
        if def.value != first.value then
          throw "The option `${showOption loc}' has conflicting definition values:${showDefs [ first def ]}\n${prioritySuggestion}"
        else first) (head defs) (tail defs)).value;
    mergeUniqueOption = { message, merge ? loc: defs: (head defs).value }: loc: defs:
      if length defs == 1 then merge loc defs
      else throw "The option `${showOption loc}' is defined multiple times while it's expected to be unique.\n${message}\nDefinition values:${showDefs defs}\n${prioritySuggestion}";
    mergeOneOption = mergeUniqueOption { message = ""; };

    # -- the module system (modules.nix) --------------------------------------------------------
    inherit (import ./modules.nix { inherit lib; })
      evalModules evalOption mergeDefinitions mergeNode filterOverrides pushDownProperties
      dischargeProperties
      ;
  };
in
lib
