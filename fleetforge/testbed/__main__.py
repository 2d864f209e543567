"""``python -m fleetforge.testbed ...``: the testbed CLI (see :mod:`fleetforge.testbed.cli`)."""

import sys

from .cli import main

sys.exit(main())
