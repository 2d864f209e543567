"""Capture a real ``IsoDir`` output as a fixture.

    python tests/facts/capture_iso_dir.py NAME DIR NOTE                     # this machine
    python tests/facts/capture_iso_dir.py NAME DIR NOTE ssh -p PORT root@127.0.0.1   # a test VM

Writes ``tests/facts/iso_dir.IsoDir/NAME.json`` with the raw output, the argument, a note and the
parsed fact. Review the parsed fact before committing: the fixture then guards the parser.
"""

import json
import shlex
import subprocess
import sys
from pathlib import Path

from fleetforge.facts.iso_dir import SCRIPT, IsoDir

name, directory, note, remote = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
command = ["sh", "-c", SCRIPT, "fleetforge-iso-dir", directory]
if remote:
    command = [*remote, shlex.join(command)]
output = subprocess.run(command, check=True, capture_output=True, text=True).stdout.splitlines()
fact = IsoDir().process(output)
path = Path(__file__).parent / "iso_dir.IsoDir" / f"{name}.json"
path.write_text(
    json.dumps({"note": note, "arg": [directory], "output": output, "fact": fact.to_json()}, indent=1) + "\n"
)
print(path)
