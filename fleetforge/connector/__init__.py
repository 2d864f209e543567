"""fleetforge's pyinfra connector on asyncssh (``@asyncssh/HOST``), registered by entry point.

- ``bridge``: the gevent/asyncio bridge (one asyncio loop in a native thread).
- ``hostkeys``: known_hosts policy (strict by default, ``accept-new`` and ``no`` explicit).
- ``asyncssh_connector``: ``AsyncSSHConnector``, the connector pyinfra loads.
"""

import warnings

# asyncssh imports cryptography's DSA support at import time, and cryptography 51 warns about it
# on every run ("DSA is deprecated ..."), before fleetforge's own output. fleetforge never offers
# or accepts DSA (ssh-dss is off by default in OpenSSH since 7.0); the warning is not the user's to
# act on, so it is silenced for that one import, and only for that message from asyncssh.
warnings.filterwarnings("ignore", message="DSA is deprecated", module=r"asyncssh(\.|$)")
