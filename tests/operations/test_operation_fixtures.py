"""Operations tested as data (pyinfra-testing's operation fixtures): arguments + facts -> the
commands, a noop, or the exception. ``operations.managed_file/*.json``: a new file, an unchanged
one (noop), a changed one (backed up), mode and owner without a backup, a hostile path (one
quoted word), a relative path (refused).

The backup stamp is fixed (``RUN_STAMP``) so the commands are the same on every run.
"""

from pathlib import Path
from unittest.mock import patch

from pyinfra_testing.operations import make_operation_tests

HERE = Path(__file__).parent

TestManagedFile = patch("fleetforge.operations.RUN_STAMP", "20260101T000000Z")(
    make_operation_tests("fleetforge", "operations.managed_file", HERE / "operations.managed_file")
)
