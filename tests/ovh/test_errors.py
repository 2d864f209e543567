"""Each way the OVH API can refuse or fail gives one ``OvhError`` line naming what failed and what
to do, with no secret in it (the real ``ovh`` client against the stand-in)."""

import socket

import pytest

from fleetforge import ovh
from fleetforge.errors import FleetforgeError
from fleetforge.testbed import ovh_api
from fleetforge.testbed.ovh_api import OvhApiStandIn
from tests.ovh.helpers import SECRETS, default_account, fleet_of


def failure(api: OvhApiStandIn, **kwargs) -> ovh.OvhError:
    with pytest.raises(ovh.OvhError) as err:
        fleet_of(api, cache_s=0, **kwargs)
    message = str(err.value)
    assert "\n" not in message
    for secret in (*SECRETS, kwargs.get("application_secret"), kwargs.get("consumer_key")):
        assert not secret or secret not in message
    assert isinstance(err.value, FleetforgeError)  # pyinfra prints it as one line, no traceback
    return err.value


def test_an_unknown_application_key(standin):
    err = failure(standin, application_key="notTheAppKey0001")
    assert err.kind == "credentials"
    assert "GET /vps: the application key is not valid (403 INVALID_KEY: Invalid application key)" in str(err)
    assert "OVH_APPLICATION_KEY" in str(err)


def test_a_wrong_application_secret(standin):
    err = failure(standin, application_secret="wrongSecret000000000000000000000")
    assert err.kind == "credentials"
    assert "the request signature was refused (400 INVALID_SIGNATURE: Invalid signature)" in str(err)
    assert "OVH_APPLICATION_SECRET" in str(err)


def test_an_unknown_consumer_key(standin):
    err = failure(standin, consumer_key="unknownConsumerKey00000000000000")
    assert "unknown, expired or not validated yet (403 INVALID_CREDENTIAL: This credential does not exist)" in str(err)
    assert "validationUrl" in str(err)


@pytest.mark.parametrize("state", ["expired", "pendingValidation"])
def test_an_expired_or_not_validated_consumer_key(state):
    with OvhApiStandIn(default_account(), consumer_keys={ovh_api.CONSUMER_KEY: state}) as api:
        err = failure(api)
    assert err.kind == "credentials"
    assert "(403 INVALID_CREDENTIAL: This credential is not valid)" in str(err)


def test_a_consumer_key_without_the_dedicated_right():
    with OvhApiStandIn(default_account(), rules=[("GET", "/vps"), ("GET", "/vps/*")]) as api:
        err = failure(api)
        assert err.kind == "permission"
        assert "GET /dedicated/server: the consumer key may not make this call (403 NOT_GRANTED_CALL" in str(err)
        assert "kinds=('vps',)" in str(err)
        assert fleet_of(api, kinds=("vps",)).all[0]  # the suggested way out works


def test_rate_limited_with_retry_after(standin):
    standin.fail_with(429, retry_after=30)
    err = failure(standin)
    assert err.kind == "rate_limit" and err.status == 429 and err.retry_after_s == 30
    assert "GET /vps: rate limited by the OVH API (429 Too Many Requests, retry after 30 s)" in str(err)


def test_rate_limited_without_retry_after(standin):
    standin.fail_with(429)
    err = failure(standin)
    assert err.retry_after_s is None
    assert "(429 Too Many Requests); wait and run again" in str(err)


@pytest.mark.parametrize("status", [500, 503])
def test_a_server_error(standin, status):
    standin.fail_with(status, count=3)  # /vps and the first VPS answer, then the API fails
    err = failure(standin)
    assert err.kind == "server" and err.status == status
    assert f"the OVH API failed (HTTP {status}: " in str(err)
    assert "try again later" in str(err)


def test_the_api_cannot_be_reached():
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ovh.OvhError) as err:
        ovh.inventory(
            endpoint=f"http://127.0.0.1:{port}/1.0",
            application_key="k",
            application_secret="s" * 20,
            consumer_key="c" * 20,
            cache_s=0,
            timeout_s=5,
        )
    assert err.value.kind == "network"
    assert f"OVH API http://127.0.0.1:{port}/1.0: GET /vps: cannot reach the API (ConnectionError" in str(err.value)
    assert "Connection refused" in str(err.value)


def test_missing_credentials_name_what_to_set(standin):
    with pytest.raises(ovh.OvhError) as err:
        ovh.inventory(endpoint=standin.endpoint, application_key=ovh_api.APPLICATION_KEY)
    assert err.value.kind == "config"
    assert "application_secret, consumer_key; set OVH_APPLICATION_SECRET, OVH_CONSUMER_KEY" in str(err.value)
    assert standin.requests == []


def test_no_endpoint_at_all(monkeypatch, tmp_path):
    monkeypatch.setattr("ovh.config.CONFIG_PATH", [])
    with pytest.raises(ovh.OvhError, match=r"^no OVH endpoint: set OVH_ENDPOINT"):
        ovh.inventory(config_file=tmp_path / "absent.conf")


@pytest.mark.parametrize(
    "endpoint", ["ovh-mars", "http://api.example.com/1.0", "ftp://127.0.0.1/1.0", "https://x.example/1.0?a=b"]
)
def test_endpoints_that_are_refused(endpoint):
    with pytest.raises(ovh.OvhError) as err:
        ovh.inventory(endpoint=endpoint, application_key="k", application_secret="s", consumer_key="c")
    assert err.value.kind == "config"
    assert "expected one of ovh-eu, ovh-us, ovh-ca" in str(err.value)


def test_bad_arguments():
    with pytest.raises(ovh.OvhError, match="kinds: expected some of vps, dedicated"):
        ovh.inventory(kinds=("vps", "cloud"))
    with pytest.raises(ovh.OvhError, match="cache_s: expected a number of seconds >= 0"):
        ovh.inventory(cache_s=-1)


def test_an_answer_that_is_not_a_list(standin):
    standin.account.extra_vps_names = []
    standin.account.vps = {}
    standin._route = lambda path: (200, {"vps": "not a list"}, {})  # a hostile or broken API
    err = failure(standin)
    assert err.kind == "response"
    assert "GET /vps: expected a list of names" in str(err)
