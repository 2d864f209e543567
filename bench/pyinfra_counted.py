"""Run pyinfra's CLI with its SSH connector instrumented: counts, per host, the commands run
(one SSH exec channel each: facts and operations), the files uploaded and the connections
opened, and writes them as JSON to ``$FLEETFORGE_COUNTS``.

    FLEETFORGE_COUNTS=counts.json python bench/pyinfra_counted.py -y inventory.py deploys/vps.py
"""

import atexit
import json
import os
from collections import Counter, defaultdict

import pyinfra_cli  # noqa: F401  (applies gevent's monkey patching first)
from pyinfra.connectors.ssh import SSHConnector
from pyinfra_cli.main import main

from fleetforge.connector.asyncssh_connector import AsyncSSHConnector

counts: dict[str, Counter] = defaultdict(Counter)


def counting(method, kind):
    def wrapper(self, *args, **kwargs):
        counts[self.host.name][kind] += 1
        return method(self, *args, **kwargs)

    return wrapper


for connector in (SSHConnector, AsyncSSHConnector):  # @ssh and fleetforge's @asyncssh
    for method, kind in (("run_shell_command", "commands"), ("put_file", "uploads"), ("connect", "connections")):
        if method in vars(connector):  # patch each class's own method once
            setattr(connector, method, counting(vars(connector)[method], kind))


@atexit.register
def _write() -> None:
    path = os.environ.get("FLEETFORGE_COUNTS")
    if path:
        with open(path, "w") as f:
            json.dump({host: dict(c) for host, c in counts.items()}, f)


if __name__ == "__main__":
    main()
