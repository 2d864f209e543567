"""NixOS hosts: the plan as modules (``modules``), activation with verification and rollback
(``activate``), flake hosts (``flake``, reading ``flake.nix`` with ``nix_scan``)."""
