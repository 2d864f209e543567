"""Capture a real ``HostProbe`` output as a pyinfra-testing fixture.

    python tests/facts/capture.py NAME                      # this machine
    python tests/facts/capture.py NAME ssh -i KEY -p PORT root@127.0.0.1   # a test VM

Writes ``tests/facts/probe.HostProbe/NAME.json`` with the raw output and the parsed fact.
Review the parsed fact before committing: the fixture then guards the parser against change.
"""

import json
import shlex
import subprocess
import sys
from pathlib import Path

from fleetforge.facts.probe import SCRIPT, HostProbe, probe_argv
from fleetforge.paths import MANAGED_FILES
from fleetforge.planner import sysctl_keys
from fleetforge.settings import HostSettings

name, remote = sys.argv[1], sys.argv[2:]
keys = sysctl_keys(HostSettings())
command = ["sh", "-c", SCRIPT, "fleetforge-probe", *probe_argv(keys, MANAGED_FILES)]
if remote:
    command = [*remote, shlex.join(command)]
output = subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()
fact = HostProbe().process(output)
path = Path(__file__).parent / "probe.HostProbe" / f"{name}.json"
path.write_text(
    json.dumps(
        {"arg": {"sysctl_keys": keys, "files": list(MANAGED_FILES)}, "output": output, "fact": fact.to_json()}, indent=2
    )
    + "\n"
)
print(path)
