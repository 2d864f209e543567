# TEST STAND-IN, not NixOS: declarations of the NixOS options fleetforge writes, with the types,
# defaults and merge rules nixpkgs declares, and NixOS's own definitions that interact with
# fleetforge's values. Written from nixpkgs' sources (nixos/modules/...), evidence and release
# attribution in docs/nixos-options.md. Namespaces marked `_strict` refuse undeclared options
# ("The option `X' does not exist.") like NixOS; the other options of a strict namespace are
# declared too (sometimes with a looser type, marked "approx") so ordinary configurations
# still evaluate. Options marked `output = false` are never forced: they hold packages, which
# the stand-in has none of; `output = config: BOOL` prints an option only where NixOS reads it
# (one without a default, read under its module's `mkIf cfg.enable`). Packages NixOS's own
# definitions put into values are "<name>" placeholders.
{ lib, release }:
let
  inherit (lib) mkOption types mkIf mkDefault mkAfter optional;
  at = lib.versionAtLeast release;

  # -- which release has what: the ONE release table of the stand-in -------------------------
  # "inferred": the first release branched off after the nixpkgs PR merged (May / November).
  has = {
    rmemMax = at "23.05"; # sysctl net.core.rmem_max: null or unsigned, max wins (PR #199504, inferred)
    wmemMax = at "24.05"; # sysctl net.core.wmem_max: same (PR #274110, inferred)
    maxMapCount = at "23.11"; # sysctl vm.max_map_count = mkDefault 1048576 (PR #238459, inferred)
    ptraceScope = !(at "23.11"); # kernel.yama.ptrace_scope = mkDefault 0, removed by PR #256159
    extraInputRules = at "23.05"; # networking.firewall.extraInputRules (PR #203011, inferred)
    firewallBackend = at "25.11"; # networking.firewall.backend (firewalld PR #398587; 25.11 vs 26.05 not established)
    harmonia = at "23.05"; # services.harmonia: shape A, signKeyPath only (PR #230550)
    harmoniaSignKeyPaths = at "24.11"; # shape B: + signKeyPaths, signKeyPath deprecated (PR #335344, inferred)
    harmoniaCache = at "26.05"; # shape C: services.harmonia.cache.*, flat names renamed (PR #488515, inferred)
    memoryPercentPositive = at "26.05"; # zramSwap.memoryPercent ints.positive (PR #444426; release not established: approx)
  };

  opt = type: default: mkOption { inherit type default; };
  hidden = default: mkOption { type = types.raw; inherit default; output = false; };
  strict = attrs: attrs // { _strict = true; };
  alias = to: { _type = "alias"; inherit to; };
  nixpkgs = file: "<nixpkgs>/nixos/modules/${file}";

  sysctlOption = types.raw // {
    name = "sysctl option value";
    description = "sysctl option value";
    descriptionClass = null;
    check = v: let ok = x: lib.isBool x || lib.isString x || lib.isInt x || x == null; in
      ok v || (v._type or "" == "override" && ok v.content);
    merge = loc: defs: lib.mergeOneOption loc (lib.filterOverrides defs).values;
  };
  highestValue = types.nullOr types.ints.unsigned // {
    merge = loc: defs: lib.foldl' (a: d: if d.value == null then null else lib.max a d.value) 0
      (lib.filterOverrides defs).values;
  };
  confAtom = types.nullOr (types.oneOf [ types.bool types.int types.float types.str types.path types.package ]) // {
    description = "Nix config atom (null, bool, int, float, str, path or package)";
  };
  tomlValue = types.oneOf [ types.bool types.int types.float types.str types.path
                            (types.attrsOf tomlValue) (types.listOf tomlValue) ] // { description = "TOML value"; };
  unitOption = types.raw // {
    name = "systemd option"; description = "systemd option"; descriptionClass = null;
    merge = loc: defs: let defs' = (lib.filterOverrides defs).values; in
      if lib.any (d: lib.isList d.value) defs' then lib.concatMap (d: lib.toList d.value) defs'
      else lib.mergeEqualOption loc defs';
  };
  listOfStr = opt (types.listOf types.str) [ ];
  ports = apply: mkOption { type = types.listOf types.port; default = [ ]; apply = if apply then ps: lib.unique (lib.sort (a: c: a < c) ps) else x: x; };
  portOptions = {
    allowedTCPPorts = ports true;
    allowedUDPPorts = ports true;
    allowedTCPPortRanges = opt (types.listOf (types.attrsOf types.port)) [ ];
    allowedUDPPortRanges = opt (types.listOf (types.attrsOf types.port)) [ ];
  };

  # services.harmonia, nixos/modules/services/networking/harmonia.nix in its three shapes
  harmoniaSettings = { enable = opt types.bool false; settings = opt tomlValue { }; signKeyPath = opt (types.nullOr types.path) null; };
  harmonia =
    if has.harmoniaCache then {
      package = hidden "<harmonia>";
      cache = strict (harmoniaSettings // { signKeyPaths = opt (types.listOf types.path) [ ]; });
      daemon = strict {
        enable = opt types.bool false;
        dbPath = opt types.str "/nix/var/nix/db/db.sqlite";
        logLevel = opt types.str "info";
        socketPath = opt types.str "/run/harmonia-daemon/socket";
        storeDir = opt types.str "/nix/store";
      };
    } // lib.genAttrs harmoniaRenamed (n: alias [ "services" "harmonia" "cache" n ])
    else if has.harmonia then harmoniaSettings // { package = hidden "<harmonia>"; }
      // lib.optionalAttrs has.harmoniaSignKeyPaths { signKeyPaths = opt (types.listOf types.path) [ ]; }
    else { };
  harmoniaRenamed = [ "enable" "signKeyPath" "signKeyPaths" "settings" ];

  serviceOptions = {
    _strict = true;
    enable = opt types.bool true;
    description = opt types.singleLineStr "";
    documentation = listOfStr;
    overrideStrategy = opt (types.enum [ "asDropinIfExists" "asDropin" ]) "asDropinIfExists";
    unitConfig = opt (types.attrsOf unitOption) { };
    serviceConfig = opt (types.attrsOf unitOption) { };
    environment = mkOption { type = types.attrsOf types.anything; default = { }; output = false; };
    path = mkOption { type = types.listOf types.anything; default = [ ]; output = false; };
    script = opt types.lines "";
    scriptArgs = opt types.str "";
    preStart = opt types.lines "";
    postStart = opt types.lines "";
    reload = opt types.lines "";
    preStop = opt types.lines "";
    postStop = opt types.lines "";
    startAt = mkOption { type = types.either types.str (types.listOf types.str); default = [ ]; apply = lib.toList; };
    restartIfChanged = opt types.bool true;
    reloadIfChanged = opt types.bool false;
    stopIfChanged = opt types.bool true;
    notSocketActivated = opt types.bool false;
    startLimitBurst = opt (types.nullOr types.int) null; # approx: no default in nixpkgs
    startLimitIntervalSec = opt (types.nullOr types.int) null; # approx: no default in nixpkgs
    enableStrictShellChecks = opt types.bool false;
    restartTriggers = mkOption { type = types.listOf types.anything; default = [ ]; output = false; };
    reloadTriggers = mkOption { type = types.listOf types.anything; default = [ ]; output = false; };
    confinement = mkOption { type = types.anything; default = { }; output = false; }; # confinement.nix: approx
    jobScripts = mkOption { type = types.listOf types.anything; default = [ ]; output = false; };
  } // lib.genAttrs [ "requires" "wants" "upholds" "after" "before" "bindsTo" "partOf" "conflicts"
                      "requisite" "wantedBy" "requiredBy" "upheldBy" "aliases" "onFailure" "onSuccess" ]
    (n: listOfStr);

  # systemd.tmpfiles.settings.<config-name>.<path>.<tmpfiles-type> (system/boot/systemd/tmpfiles.nix)
  tmpfilesEntry = { name }: {
    _strict = true;
    type = opt types.str name;
    mode = opt types.str "-";
    user = opt types.str "-";
    group = opt types.str "-";
    age = opt types.str "-";
    argument = opt types.str "";
  };

  noTrailingSlash = types.str // {
    description = "string (with check: non-empty without trailing slash)";
    check = s: lib.isString s && builtins.match "[ \t\n]*" s == null && builtins.match ".+/" s == null;
  };
  fileSystemOptions = { name }: {
    _strict = true;
    mountPoint = opt noTrailingSlash name;
    device = opt (types.nullOr types.nonEmptyStr) null;
    fsType = opt types.nonEmptyStr "auto";
    options = opt (types.nonEmptyListOf types.nonEmptyStr) [ "defaults" ];
    depends = opt (types.listOf types.nonEmptyStr) [ ];
    label = opt (types.nullOr types.str) null;
    autoFormat = opt types.bool false;
    formatOptions = opt (types.nullOr types.str) null;
    autoResize = opt types.bool false;
    noCheck = opt types.bool false;
    neededForBoot = opt types.bool false;
    encrypted = opt types.anything { }; # luksroot.nix: approx
    stratis = opt types.anything { }; # approx
    overlay = opt types.anything { }; # approx
  };
in
{
  declarations = {
    assertions = opt (types.listOf types.unspecified) [ ]; # nixos/modules/misc/assertions.nix
    warnings = opt (types.listOf types.str) [ ];

    # config/zram.nix
    zramSwap = strict {
      enable = opt types.bool false;
      swapDevices = opt types.int 1;
      memoryPercent = opt (if has.memoryPercentPositive then types.ints.positive else types.int) 50;
      memoryMax = opt (types.nullOr types.int) null;
      priority = opt types.int 5;
      # newer nixpkgs lists more algorithms in the enum; any string is accepted either way
      algorithm = opt (types.either (types.enum [ "lzo" "lz4" "zstd" ]) types.str) "zstd";
      writebackDevice = opt (types.nullOr types.path) null;
      numDevices = { _type = "removed"; message = "Using ZRAM devices as general purpose ephemeral block devices is no longer supported"; };
    };

    # config/sysctl.nix: a freeform submodule; rmem_max/wmem_max declared where the release has them
    boot.kernel.sysctl = opt (types.submoduleWith {
      freeformType = types.attrsOf sysctlOption;
      options = lib.optionalAttrs has.rmemMax { "net.core.rmem_max" = opt highestValue null; }
        // lib.optionalAttrs has.wmemMax { "net.core.wmem_max" = opt highestValue null; };
    }) { };

    # config/nix.nix (services/misc/nix-daemon.nix before 23.11)
    nix = {
      enable = opt types.bool true;
      extraOptions = opt types.lines "";
      settings = opt (types.submoduleWith {
        freeformType = types.attrsOf (types.either confAtom (types.listOf confAtom));
        options = {
          max-jobs = opt (types.either types.int (types.enum [ "auto" ])) "auto";
          auto-optimise-store = opt types.bool false;
          cores = opt types.int 0;
          sandbox = opt (types.either types.bool (types.enum [ "relaxed" ])) true;
          extra-sandbox-paths = listOfStr;
          substituters = mkOption { type = types.listOf types.str; };
          trusted-substituters = listOfStr;
          require-sigs = opt types.bool true;
          trusted-public-keys = mkOption { type = types.listOf types.str; };
          trusted-users = mkOption { type = types.listOf types.str; };
          system-features = mkOption { type = types.listOf types.str; };
          allowed-users = opt (types.listOf types.str) [ "*" ];
        };
      }) { };
    };

    services = {
      udev = strict { # services/hardware/udev.nix
        extraRules = opt types.lines "";
        extraHwdb = opt types.lines "";
        packages = mkOption { type = types.listOf types.anything; default = [ ]; output = false; };
        path = mkOption { type = types.listOf types.anything; default = [ ]; output = false; };
      };
      nix-serve = strict { # services/networking/nix-serve.nix
        enable = opt types.bool false;
        port = opt types.port 5000;
        bindAddress = opt types.str "0.0.0.0";
        secretKeyFile = opt (types.nullOr types.str) null;
        extraParams = opt (types.separatedString " ") "";
        openFirewall = opt types.bool false;
        package = hidden "<nix-serve>";
      };
      harmonia = strict harmonia; # services/networking/harmonia.nix; none before 23.05
      nfs = strict { # services/network-filesystems/nfsd.nix
        server = strict {
          enable = opt types.bool false;
          exports = opt types.lines "";
          hostName = opt (types.nullOr types.str) null;
          nproc = opt types.int 8;
          lockdPort = opt (types.nullOr types.int) null;
          mountdPort = opt (types.nullOr types.int) null;
          statdPort = opt (types.nullOr types.int) null;
          createMountPoints = opt types.bool false;
          extraNfsdConfig = opt types.str "";
        };
        settings = opt types.anything { }; # approx
        idmapd.settings = opt types.anything { }; # approx
        extraConfig = opt types.lines "";
      };
    };

    networking = {
      # services/networking/firewall.nix, firewall-iptables.nix, firewall-nftables.nix
      firewall = strict ({
        enable = opt types.bool true;
        package = hidden "<iptables or nftables>";
        logRefusedConnections = opt types.bool true;
        logRefusedPackets = opt types.bool false;
        logRefusedUnicastsOnly = opt types.bool true;
        rejectPackets = opt types.bool false;
        trustedInterfaces = listOfStr;
        allowPing = opt types.bool true;
        pingLimit = opt (types.nullOr (types.separatedString " ")) null;
        checkReversePath = opt (types.either types.bool (types.enum [ "strict" "loose" ])) true;
        logReversePathDrops = opt types.bool false;
        filterForward = opt types.bool false;
        filterOutput = opt types.anything { }; # newer nixpkgs only: approx
        connectionTrackingModules = listOfStr;
        autoLoadConntrackHelpers = opt types.bool false;
        extraPackages = mkOption { type = types.listOf types.anything; default = [ ]; output = false; };
        interfaces = opt (types.attrsOf (types.submodule (strict portOptions))) { };
        extraCommands = opt types.lines "";
        extraStopCommands = opt types.lines "";
      } // portOptions // lib.optionalAttrs has.extraInputRules {
        extraInputRules = opt types.lines "";
        extraForwardRules = opt types.lines "";
        extraReversePathFilterRules = opt types.lines ""; # release not established: approx
      } // lib.optionalAttrs has.firewallBackend {
        # its default reads config: defined at mkOptionDefault by the firewall module below
        backend = mkOption { type = types.enum [ "iptables" "nftables" "firewalld" ]; };
      });
      nftables = strict { # services/networking/nftables.nix (declarations not read: approx)
        enable = opt types.bool false;
        ruleset = opt types.lines "";
        rulesetFile = opt (types.nullOr types.path) null;
        tables = opt (types.attrsOf types.anything) { };
        checkRuleset = opt types.bool true;
        checkRulesetRedirects = opt (types.attrsOf types.anything) { };
        extraDeletions = opt types.lines "";
        flushRuleset = opt types.bool true;
        preCheckRuleset = opt types.lines "";
        flattenRulesetFile = opt types.bool false;
      };
    };

    fileSystems = opt (types.attrsOf (types.submodule fileSystemOptions)) { }; # tasks/filesystems.nix
    systemd.services = opt (types.attrsOf (types.submodule serviceOptions)) { }; # lib/systemd-unit-options.nix
    # system/boot/systemd/tmpfiles.nix (@9ab61b25): rules go to /etc/tmpfiles.d/00-nixos.conf.
    # NixOS's own rules there (d /run/lock 0755, L+ .../gcroots/booted-system, R! ...) are not
    # modelled: they only concatenate, and applying them would change the Debian VM itself.
    systemd.tmpfiles = strict {
      rules = listOfStr;
      settings = opt (types.attrsOf (types.attrsOf (types.attrsOf (types.submodule tmpfilesEntry)))) { };
      packages = mkOption { type = types.listOf types.anything; default = [ ]; output = false; }; # apply = map getLib: approx
    };

    virtualisation = {
      # virtualisation/containers.nix (@df7e8710; the same in a formatted index copy, faukah/nixpkgs @3b20077c)
      containers = strict {
        enable = opt types.bool false;
        ociSeccompBpfHook = strict { enable = opt types.bool false; };
        containersConf = strict {
          settings = opt tomlValue { };
          # listOf package, no default; containers.nix defines [ pkgs.cni-plugins ] under enable
          cniPlugins = mkOption { type = types.listOf types.anything; output = false; };
        };
        # toml.type, NO default: read (toml.generate "storage.conf") only under enable, where
        # containers.nix defines it; printed there only
        storage = strict {
          settings = mkOption { type = tomlValue; output = config: config.virtualisation.containers.enable; };
        };
        registries = strict {
          search = opt (types.listOf types.str) [ "docker.io" "quay.io" ];
          insecure = listOfStr;
          block = listOfStr;
        };
        policy = opt types.attrs { };
      };
      # virtualisation/podman/default.nix (@2c20fe0d): only `enable` declared, the rest of
      # virtualisation.podman is not modelled (lenient: approx)
      podman.enable = opt types.bool false;
    };
  };

  aliases = lib.optionals has.harmoniaCache
    (map (n: { from = [ "services" "harmonia" n ]; to = [ "services" "harmonia" "cache" n ]; }) harmoniaRenamed);
  removed = [ { path = [ "zramSwap" "numDevices" ]; message = "Using ZRAM devices as general purpose ephemeral block devices is no longer supported"; } ];

  # NixOS's own definitions that meet fleetforge's values
  modules = [
    { _file = nixpkgs "config/sysctl.nix";
      config.boot.kernel.sysctl = { "kernel.kptr_restrict" = mkDefault 1; }
        // lib.optionalAttrs has.maxMapCount { "vm.max_map_count" = mkDefault 1048576; }
        // lib.optionalAttrs has.ptraceScope { "kernel.yama.ptrace_scope" = mkDefault 0; }; }
    ({ config, ... }: { _file = nixpkgs "config/nix.nix";
      config = mkIf config.nix.enable {
        nix.settings = {
          trusted-public-keys = [ "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=" ];
          trusted-users = [ "root" ];
          substituters = mkAfter [ "https://cache.nixos.org/" ];
          system-features = mkDefault [ "nixos-test" "benchmark" "big-parallel" "kvm" ];
        };
      }; })
    ({ config, ... }:
      let cfg = config.networking.firewall; in {
        _file = nixpkgs "services/networking/firewall.nix";
        config = lib.mkMerge [
          (lib.optionalAttrs has.firewallBackend {
            networking.firewall.backend = lib.mkOptionDefault (
              if config.services.firewalld.enable or false then "firewalld"
              else if config.networking.nftables.enable then "nftables" else "iptables");
          })
          # firewall-nftables.nix (before the backend option: cfg.enable && nftables.enable)
          (mkIf (cfg.enable && (if has.firewallBackend then cfg.backend == "nftables" else config.networking.nftables.enable)) {
            assertions = [
              { assertion = cfg.extraCommands == "";
                message = "extraCommands is incompatible with the nftables based firewall: ${cfg.extraCommands}"; }
              { assertion = cfg.extraStopCommands == "";
                message = "extraStopCommands is incompatible with the nftables based firewall: ${cfg.extraStopCommands}"; }
            ];
          })
        ];
      })
    ({ config, ... }:
      let cfg = config.virtualisation.containers; in {
        _file = nixpkgs "virtualisation/containers.nix";
        config = mkIf cfg.enable {
          virtualisation.containers.containersConf.cniPlugins = [ "<cni-plugins>" ];
          virtualisation.containers.containersConf.settings = {
            network.cni_plugin_dirs = map (p: "${p}/bin") cfg.containersConf.cniPlugins;
            engine = { init_path = "<catatonit>/bin/catatonit"; }
              // lib.optionalAttrs cfg.ociSeccompBpfHook.enable { hooks_dir = [ "<oci-seccomp-bpf-hook>" ]; };
          };
          virtualisation.containers.storage.settings.storage = {
            driver = mkDefault "overlay";
            graphroot = mkDefault "/var/lib/containers/storage";
            runroot = mkDefault "/run/containers/storage";
          };
        };
      })
    ({ config, ... }: { _file = nixpkgs "virtualisation/podman/default.nix";
      # "Enable common /etc/containers configuration"
      config = mkIf config.virtualisation.podman.enable { virtualisation.containers.enable = true; }; })
    ({ config, ... }:
      let cfg = config.services.harmonia; in {
        _file = nixpkgs "services/networking/harmonia.nix";
        config =
          if has.harmoniaCache then mkIf cfg.cache.enable {
            services.harmonia.cache.settings = builtins.mapAttrs (_: mkDefault)
              { bind = "[::]:5000"; workers = 4; max_connection_rate = 256; priority = 50; };
            warnings = optional (cfg.cache.signKeyPath != null)
              "`services.harmonia.cache.signKeyPath` is deprecated, use `services.harmonia.cache.signKeyPaths` instead";
          }
          else if has.harmonia then mkIf cfg.enable {
            nix.settings.extra-allowed-users = [ "harmonia" ];
            warnings = optional (has.harmoniaSignKeyPaths && cfg.signKeyPath != null)
              "`services.harmonia.signKeyPath` is deprecated, use `services.harmonia.signKeyPaths` instead";
          }
          else { };
      })
  ];
}
