"""Fixtures of the OVH inventory tests: the local OVH API stand-in and a clean environment.

Every test gets its own cache directory (``XDG_CACHE_HOME``) and none of the ``OVH_*`` variables
of the person running the tests, so nothing reaches a real account.
"""

from collections.abc import Iterator

import pytest

from fleetforge.testbed.ovh_api import OvhApiStandIn
from tests.ovh.helpers import default_account


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    for name in ("ENDPOINT", "APPLICATION_KEY", "APPLICATION_SECRET", "CONSUMER_KEY", "CLIENT_ID", "CLIENT_SECRET"):
        monkeypatch.delenv(f"OVH_{name}", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def standin() -> Iterator[OvhApiStandIn]:
    with OvhApiStandIn(default_account()) as api:
        yield api
