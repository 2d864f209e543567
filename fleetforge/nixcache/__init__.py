"""The shared Nix store: roles, files and NixOS options (``roles``), the deploy on the cache host
and clients (``deploy``), and its verify checks (``verify``)."""
