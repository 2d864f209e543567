"""Remote paths fleetforge owns on a (non-NixOS) host.

The probe reads their current content so operations can diff, back up and skip uploads
without extra round trips.
"""

UDEV_RULES = "/etc/udev/rules.d/60-fleetforge-io.rules"
SYSCTL_CONF = "/etc/sysctl.d/60-fleetforge.conf"
# zram-generator reads exactly this file; writing it *owns* Debian's default instead of
# stacking a second device next to it (zram-generator.conf(5): this file replaces the packaged
# /usr/lib/systemd/zram-generator.conf).
ZRAM_GENERATOR_CONF = "/etc/systemd/zram-generator.conf"
NIX_CONF = "/etc/nix/nix.conf"
# Podman's storage configuration; it replaces /usr/share/containers/storage.conf whole
# (containers-storage.conf(5)).
STORAGE_CONF = "/etc/containers/storage.conf"
# tmpfiles.d(5) lines that set each btrfs filesystem's bdi read-ahead at boot
BTRFS_TMPFILES = "/etc/tmpfiles.d/60-fleetforge-btrfs-read-ahead.conf"

# NixOS hosts: /etc is generated, so the plan becomes modules imported by configuration.nix.
NIXOS_DIR = "/etc/nixos"
NIXOS_CONFIGURATION = "/etc/nixos/configuration.nix"
NIXOS_FLAKE = "/etc/nixos/flake.nix"
NIXOS_MODULE_DIR = "/etc/nixos/fleetforge"
NIXOS_MODULES = (
    "default.nix",
    "sysctl.nix",
    "io-scheduler.nix",
    "btrfs-read-ahead.nix",
    "zram.nix",
    "nix-settings.nix",
    "podman.nix",
    "nix-cache.nix",
)

MANAGED_FILES: tuple[str, ...] = (
    UDEV_RULES,
    BTRFS_TMPFILES,
    SYSCTL_CONF,
    ZRAM_GENERATOR_CONF,
    NIX_CONF,
    STORAGE_CONF,
    NIXOS_CONFIGURATION,
    NIXOS_FLAKE,
    *(f"{NIXOS_MODULE_DIR}/{name}" for name in NIXOS_MODULES),
)

# Backups of replaced files go next to the file: ``<path>.fleetforge-<UTC stamp>.bak``.
BACKUP_SUFFIX = ".fleetforge-{stamp}.bak"
