"""fleetforge's pyinfra connector on asyncssh (``@asyncssh/HOST``), registered by entry point.

- ``bridge``: the gevent/asyncio bridge (one asyncio loop in a native thread).
- ``hostkeys``: known_hosts policy (strict by default, ``accept-new`` and ``no`` explicit).
- ``asyncssh_connector``: ``AsyncSSHConnector``, the connector pyinfra loads.
"""
