"""Helpers of the run store tests: stores are found next to each test's inventory, never through
an environment variable left by the caller."""

from pathlib import Path

import pytest

from fleetforge.runs.models import RunRecord
from fleetforge.runs.store import ENV, FILE_NAME, RunStore


@pytest.fixture(autouse=True)
def _no_store_from_the_environment(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)


def runs_in(directory: Path, name: str = FILE_NAME) -> list[RunRecord]:
    """The runs stored in ``directory/name`` (none if it does not exist)."""
    path = Path(directory) / name
    return RunStore(path).runs() if path.exists() else []


def store_bytes(directory: Path) -> bytes:
    """Every byte of the store's files (``fleetforge-runs.sqlite`` and its ``-wal``/``-shm``)."""
    return b"".join(p.read_bytes() for p in sorted(Path(directory).glob(FILE_NAME + "*")))
