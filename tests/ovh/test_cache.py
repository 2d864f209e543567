"""The cache of the OVH answers: one round of API calls per ``cache_s``, a private file, no key."""

import json
import os
import stat

from fleetforge.ovh.cache import cache_dir
from fleetforge.testbed import ovh_api
from tests.ovh.helpers import STOPPED, VPS_1, fleet_of, names


def only_cache_file():
    (path,) = cache_dir().iterdir()
    return path


def test_a_second_inventory_within_the_ttl_makes_no_api_call(standin, capsys):
    first = fleet_of(standin)
    calls = len(standin.requests)
    assert calls > 5 and not first.cached
    second = fleet_of(standin)
    assert len(standin.requests) == calls
    assert second.cached
    assert second.all == first.all and second.groups() == first.groups()
    assert second.skipped == [(STOPPED, "state stopped")]  # still reported, from the cached answers
    assert capsys.readouterr().err.count("skipped") == 2


def test_cache_s_zero_always_asks_the_api_and_writes_nothing(standin):
    fleet_of(standin, cache_s=0)
    calls = len(standin.api_calls())
    fleet_of(standin, cache_s=0)
    assert len(standin.api_calls()) == 2 * calls
    assert not cache_dir().exists()


def test_an_expired_cache_is_fetched_again(standin):
    fleet_of(standin)
    path = only_cache_file()
    cached = json.loads(path.read_text())
    cached["fetched_at"] -= 301
    path.write_text(json.dumps(cached))
    calls = len(standin.requests)
    assert not fleet_of(standin).cached
    assert len(standin.requests) > calls


def test_the_cache_file_is_private_atomic_and_holds_no_key(standin):
    fleet_of(standin)
    path = only_cache_file()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    text = path.read_text()
    for key in (ovh_api.APPLICATION_SECRET, ovh_api.CONSUMER_KEY, ovh_api.APPLICATION_KEY):
        assert key not in text and key not in path.name
    assert VPS_1 in text  # it does hold the answers
    assert str(path.parent).startswith(os.environ["XDG_CACHE_HOME"])
    assert path.parent.name == "ovh" and path.parent.parent.name == "fleetforge"


def test_a_cache_readable_by_others_is_not_trusted(standin):
    fleet_of(standin)
    only_cache_file().chmod(0o644)
    calls = len(standin.requests)
    assert not fleet_of(standin).cached
    assert len(standin.requests) > calls
    assert stat.S_IMODE(only_cache_file().stat().st_mode) == 0o600  # replaced by a private one


def test_another_consumer_key_does_not_share_the_cache(standin):
    standin.consumer_keys["secondAccountConsumerKey00000001"] = "validated"
    fleet_of(standin)
    assert not fleet_of(standin, consumer_key="secondAccountConsumerKey00000001").cached
    assert len(list(cache_dir().iterdir())) == 2


def test_a_cache_that_cannot_be_written_is_reported_not_fatal(standin, monkeypatch, tmp_path, capsys):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    assert VPS_1 in names(fleet_of(standin).all)
    assert "fleetforge ovh: cannot cache the OVH answers in" in capsys.readouterr().err


def test_hostile_answers_in_the_cache_are_still_refused(standin):
    fleet_of(standin)
    path = only_cache_file()
    cached = json.loads(path.read_text())
    cached["account"]["vps"][0]["name"] = "$(reboot)"
    path.write_text(json.dumps(cached))
    fleet = fleet_of(standin)
    assert fleet.cached
    assert ("'$(reboot)'", "vps service name is not an RFC 1123 host name") in fleet.skipped
