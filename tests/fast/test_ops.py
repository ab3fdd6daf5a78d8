"""Operations in-process: named keys from a keys file, per-key audio quotas and their headers, the
anonymous budget of an open server, quotas shared by two apps through a real redis-server, request
ids. (Metrics of real requests and streams, JSON request logs and a stream over its quota:
tests/test_ops.py, on real servers.)"""

from __future__ import annotations

import pytest

from tests.http_utils import assert_error, jfk_file, post
from tests.ops_utils import add_key, assert_quota_sequence, scrape, value
from tests.redis_server import RedisServer


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("keys") / "keys.json"
    return {
        "file": path,
        "bob": add_key(path, "bob"),
        "small": add_key(path, "small", "--audio-seconds-per-minute", "20"),
    }


def test_audio_quota_of_a_named_key(make_app, keys) -> None:
    client = make_app(auth={"keys_file": str(keys["file"])}).client
    assert_quota_sequence(client, client, keys["small"], keys["bob"])
    assert value(scrape(client), "audio_service_quota_rejections_total", key="small", limit="audio_seconds") == 1
    wrong = post(client, jfk_file(), headers={"Authorization": f"Bearer {keys['bob'][:-2]}xx"})
    assert_error(wrong, 401, code="invalid_api_key")


def test_audio_quota_shared_through_redis_by_two_apps(make_app, keys) -> None:
    """Two apps (two replicas' worth of limiter state) on one real redis-server share a key's budget."""
    with RedisServer() as redis_server:
        settings = {"auth": {"keys_file": str(keys["file"])}, "quotas": {"storage": redis_server.url}}
        a, b = make_app(**settings).client, make_app(**settings).client
        assert_quota_sequence(a, b, keys["small"], keys["bob"])


def test_open_server_sends_rate_limit_headers(client) -> None:
    """The default (in-memory) storage on an open server: every /v1 answer carries the anonymous budget."""
    r = client.get("/v1/models")
    assert r.status_code == 200
    assert int(r.headers["x-ratelimit-limit-requests"]) == 6000
    assert int(r.headers["x-ratelimit-remaining-requests"]) < 6000
    assert r.headers["x-ratelimit-limit-audio-seconds"] == "12000"


def test_request_id_round_trip(client) -> None:
    r = post(client, jfk_file(), data={"language": "en"}, headers={"X-Request-ID": "trace-42"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "trace-42"
    bad = post(client, None, data={"language": "en"}, headers={"X-Request-ID": "e-1"})
    body = assert_error(bad, 400)
    assert body == bad.json()["error"] and bad.json()["request_id"] == "e-1"
    assert client.get("/v1/models").headers["x-request-id"].startswith("req_")
