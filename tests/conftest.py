"""Shared test helpers. VM fixtures come from ``fleetforge.testbed.pytest_plugin``.

The process is monkey-patched by gevent first, as pyinfra's CLI is (pyinfra's own test helpers
would patch it on import anyway), so the connector and its bridge are tested as they run.
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
from pathlib import Path  # noqa: E402

from fleetforge.facts.probe import HostProbe  # noqa: E402
from fleetforge.models import HostFacts  # noqa: E402

FIXTURES = Path(__file__).parent / "facts" / "probe.HostProbe"


def load_fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def facts_from(name: str) -> HostFacts:
    """Parse a captured real probe output (not the stored expected fact)."""
    return HostProbe().process(load_fixture(name)["output"])
