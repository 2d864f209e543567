"""Remote paths fleetforge owns on a (non-NixOS) host.

The probe reads their current content so operations can diff, back up and skip uploads
without extra round trips.
"""

UDEV_RULES = "/etc/udev/rules.d/60-fleetforge-io.rules"
SYSCTL_CONF = "/etc/sysctl.d/60-fleetforge.conf"
# zram-generator reads exactly this file; writing it *owns* Debian's default instead of
# stacking a second device next to it (domain notes, "zram").
ZRAM_GENERATOR_CONF = "/etc/systemd/zram-generator.conf"
NIX_CONF = "/etc/nix/nix.conf"

MANAGED_FILES: tuple[str, ...] = (UDEV_RULES, SYSCTL_CONF, ZRAM_GENERATOR_CONF, NIX_CONF)

# Backups of replaced files go next to the file: ``<path>.fleetforge-<UTC stamp>.bak``.
BACKUP_SUFFIX = ".fleetforge-{stamp}.bak"
