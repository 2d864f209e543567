"""The floor for gathering facts (benchmark helper, not a test): per host, one asyncssh
connection running one command, the same batched ``HostProbe`` script a deploy runs, all hosts
at once; the facts are printed as JSON. No pyinfra run, no inventory, no planning; the same
cipher preference as the connector, each known_hosts file parsed once.

    python bench/probe_floor.py HOSTS.json     # [{"host", "port", "user", "key", "known_hosts"}, ...]

Exit 1 if any host failed (the error is in its JSON entry).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import fleetforge.connector  # noqa: E402, F401  (first: silences asyncssh's DSA warning on import)

# isort: split
import asyncssh  # noqa: E402

from fleetforge.connector.asyncssh_connector import ENCRYPTION_ALGS  # noqa: E402
from fleetforge.facts.probe import HostProbe, parse_probe  # noqa: E402
from fleetforge.paths import MANAGED_FILES  # noqa: E402
from fleetforge.planner import sysctl_keys  # noqa: E402
from fleetforge.settings import HostSettings  # noqa: E402

COMMAND = HostProbe().command(sysctl_keys(HostSettings()), MANAGED_FILES).get_raw_value()


async def probe(target: dict, known_hosts: dict[str, asyncssh.SSHKnownHosts]) -> dict:
    try:
        async with asyncssh.connect(
            target["host"],
            port=target["port"],
            username=target["user"],
            client_keys=[target["key"]],
            known_hosts=known_hosts[target["known_hosts"]],
            agent_path=None,
            encryption_algs=ENCRYPTION_ALGS,  # the connector's cipher preference (cheapest per packet)
        ) as conn:
            result = await conn.run(COMMAND, check=True)
        return parse_probe(str(result.stdout).splitlines()).to_json()
    except (OSError, asyncssh.Error, ValueError) as e:
        return {"error": f"{type(e).__name__}: {e}"}


async def main(targets: list[dict]) -> int:
    # each known_hosts file parsed once (as the connector does), not once per connection: a
    # fleet sharing one file would otherwise cost N x N key parses
    known_hosts = {path: asyncssh.read_known_hosts(path) for path in {t["known_hosts"] for t in targets}}
    results = await asyncio.gather(*(probe(t, known_hosts) for t in targets))
    print(json.dumps(dict(zip((f"{t['host']}:{t['port']}" for t in targets), results, strict=True))))
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(json.loads(Path(sys.argv[1]).read_text()))))
