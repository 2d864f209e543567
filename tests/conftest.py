"""Shared test helpers. VM fixtures come from ``fleetforge.testbed.pytest_plugin``."""

import json
from pathlib import Path

from facts.probe import HostProbe
from fleetforge.models import HostFacts

FIXTURES = Path(__file__).parent / "facts" / "probe.HostProbe"


def load_fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def facts_from(name: str) -> HostFacts:
    """Parse a captured real probe output (not the stored expected fact)."""
    return HostProbe().process(load_fixture(name)["output"])
