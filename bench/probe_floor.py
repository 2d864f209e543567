"""The floor for gathering facts (benchmark helper, not a test): per host, one asyncssh
connection running one command, the same batched ``HostProbe`` script a deploy runs, all hosts
at once; the facts are printed as JSON. No pyinfra, no inventory, no planning.

    python bench/probe_floor.py HOSTS.json     # [{"host", "port", "user", "key", "known_hosts"}, ...]

Exit 1 if any host failed (the error is in its JSON entry).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import asyncssh

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fleetforge.connector.asyncssh_connector import ENCRYPTION_ALGS  # noqa: E402
from fleetforge.facts.probe import HostProbe, parse_probe  # noqa: E402
from fleetforge.planner import sysctl_keys  # noqa: E402
from fleetforge.settings import HostSettings  # noqa: E402

COMMAND = HostProbe().command(sysctl_keys(HostSettings())).get_raw_value()


async def probe(target: dict) -> dict:
    try:
        async with asyncssh.connect(
            target["host"],
            port=target["port"],
            username=target["user"],
            client_keys=[target["key"]],
            known_hosts=target["known_hosts"],
            agent_path=None,
            encryption_algs=ENCRYPTION_ALGS,  # the connector's cipher preference (cheapest per packet)
        ) as conn:
            result = await conn.run(COMMAND, check=True)
        return parse_probe(str(result.stdout).splitlines()).to_json()
    except (OSError, asyncssh.Error, ValueError) as e:
        return {"error": f"{type(e).__name__}: {e}"}


async def main(targets: list[dict]) -> int:
    results = await asyncio.gather(*(probe(t) for t in targets))
    print(json.dumps(dict(zip((f"{t['host']}:{t['port']}" for t in targets), results, strict=True))))
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(json.loads(Path(sys.argv[1]).read_text()))))
