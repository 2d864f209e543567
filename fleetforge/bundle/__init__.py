"""Offline ISO bundles: ``manifest`` (TOML, validated; ``index.json``), ``fetch`` (download once
on the laptop, resume, verify), ``plan`` (what a host needs, disk thresholds) and ``push``
(the pyinfra deploy: send only what changed, verified on the host).
"""
