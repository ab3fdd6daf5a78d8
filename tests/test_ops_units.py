"""Pure logic of the operations layer: keys, quota bookkeeping (real ``limits`` storage), headers, logs."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from audio_service.api.middleware.requests import request_id_from
from audio_service.errors import AuthenticationError
from audio_service.keys import KeyIdentity, KeyStore, add_key, hash_key, read_keys_file
from audio_service.logs import JsonFormatter
from audio_service.ops.quotas import QuotaExceededError, Quotas, format_duration
from audio_service.settings import Settings


def test_keys_file_stores_hashes_and_names(tmp_path) -> None:
    path = tmp_path / "keys.json"
    key = add_key(path, "alice", audio_seconds_per_minute=20)
    text = path.read_text()
    assert key not in text and hash_key(key) in text
    (entry,) = read_keys_file(path)
    assert entry == {"name": "alice", "sha256": hash_key(key), "audio_seconds_per_minute": 20}
    store = KeyStore(["plain-env-key"], path)
    assert store.authenticate(key) == KeyIdentity("alice", audio_seconds_per_minute=20)
    assert store.authenticate("plain-env-key").name == f"key-{hash_key('plain-env-key')[:8]}"
    with pytest.raises(AuthenticationError):
        store.authenticate(key + "x")
    with pytest.raises(AuthenticationError):
        store.authenticate(None)
    with pytest.raises(ValueError):
        add_key(path, "alice")  # names are unique


def test_open_server_is_one_anonymous_caller() -> None:
    store = KeyStore([])
    assert store.open and store.authenticate(None).name == "anonymous" and store.authenticate("anything").name == "anonymous"


def test_reset_format_like_openai() -> None:
    assert [format_duration(s) for s in (0.25, 1.0, 17.2, 60, 61.5)] == ["250ms", "1s", "18s", "1m0s", "1m2s"]


def test_audio_budget_is_charged_after_decoding_and_may_overdraw() -> None:
    async def scenario() -> list:
        quotas = Quotas(Settings(quotas={"audio_seconds_per_minute": 20, "requests_per_minute": 2}))
        small, other = KeyIdentity("small"), KeyIdentity("other", audio_seconds_per_minute=5)
        out = []
        for _ in range(3):  # 11 s twice fits (the second overdraws), the third is refused
            try:
                await quotas.check_audio(small)
                await quotas.charge_audio(small, 11.0)
                out.append("ok")
            except QuotaExceededError as exc:
                out.append((exc.retry_after_s, exc.code))
        state = await quotas.state(small)
        out.append((state.remaining_audio_s, state.headers()["x-ratelimit-limit-audio-seconds"]))
        # a stream frame is charged only if it fits
        out.append([await quotas.take_stream_audio(other, 2.0) for _ in range(3)])
        await quotas.hit_request(other)
        await quotas.hit_request(other)
        with pytest.raises(QuotaExceededError):
            await quotas.hit_request(other)
        return out

    ok1, ok2, refused, (remaining, limit), frames = asyncio.run(scenario())
    assert (ok1, ok2) == ("ok", "ok")
    assert refused[1] == "rate_limit_exceeded" and 1 <= refused[0] <= 60
    assert remaining == 0 and limit == "20"
    assert frames == [True, True, False]


def test_request_ids() -> None:
    assert request_id_from("abc-123") == "abc-123"
    assert request_id_from("bad id\n").startswith("req_") and request_id_from(None).startswith("req_")


def test_json_log_line_carries_fields() -> None:
    record = logging.LogRecord("audio_service.requests", logging.INFO, __file__, 1, "request", (), None)
    record.fields = {"request_id": "r1", "key": "alice", "status": 200}
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "request" and line["request_id"] == "r1" and line["key"] == "alice" and line["status"] == 200


def test_container_stop_matches_the_drain() -> None:
    """Docker sends SIGTERM and waits longer than the server's drain before it kills the process."""
    import yaml

    from tests.server import ROOT

    assert "STOPSIGNAL SIGTERM" in (ROOT / "Dockerfile").read_text()
    grace = Settings().server.shutdown_grace_s
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    ours = {name: svc for name, svc in services.items() if "build" in svc}  # not Prometheus/Grafana
    assert ours
    for name, service in ours.items():
        assert service["stop_signal"] == "SIGTERM", name
        assert float(service["stop_grace_period"].removesuffix("s")) > grace, name


def _client(chunks: list[bytes]):
    """An ASGI client sending ``chunks`` as the request body, then waiting (it never disconnects)."""
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    sent: list[dict] = []

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()

    async def send(message):
        sent.append(message)

    return receive, send, sent


async def _read_body(receive) -> bytes:
    body = b""
    while True:
        m = await receive()
        body += m.get("body", b"")
        if not m.get("more_body"):
            return body


def test_request_whose_replica_died_is_sent_again_with_its_body(monkeypatch) -> None:
    """Pure logic (a fake proxy app): the first attempt reads part of the body and ends without an
    answer (what Serve's proxy does when the replica dies); the second gets the whole body again."""
    from audio_service.scale import replica_loss

    monkeypatch.setattr(replica_loss, "REPLAY_CHUNK", 3)  # replay in several messages
    attempts: list[bytes] = []

    async def proxy(scope, receive, send):
        if not attempts:
            attempts.append((await receive())["body"])  # the replica died after the first chunk
            return
        attempts.append(await _read_body(receive))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    receive, send, sent = _client([b"abcd", b"efgh", b"ij"])
    asyncio.run(replica_loss.ReplicaLossMiddleware(proxy)({"type": "http", "method": "POST", "path": "/v1/x"}, receive, send))
    assert attempts == [b"abcd", b"abcdefghij"] and [m.get("status") for m in sent][:1] == [200]


def test_request_lost_twice_gets_a_clear_503() -> None:
    from audio_service.scale import replica_loss

    calls = []

    async def proxy(scope, receive, send):
        calls.append(await _read_body(receive))

    receive, send, sent = _client([b"body"])
    asyncio.run(replica_loss.ReplicaLossMiddleware(proxy)({"type": "http", "method": "POST", "path": "/v1/x"}, receive, send))
    assert calls == [b"body", b"body"]  # sent once more, not again and again
    assert sent[0]["status"] == 503 and dict(sent[0]["headers"])[b"retry-after"] == b"2"
    assert json.loads(sent[1]["body"])["error"]["code"] == "replica_lost"


def test_request_too_large_to_keep_is_not_sent_again(monkeypatch) -> None:
    from audio_service.scale import replica_loss

    monkeypatch.setattr(replica_loss, "RETRY_BODY_BYTES", 5)
    calls = []

    async def proxy(scope, receive, send):
        calls.append(await _read_body(receive))

    receive, send, sent = _client([b"abcd", b"efgh"])
    asyncio.run(replica_loss.ReplicaLossMiddleware(proxy)({"type": "http", "method": "POST", "path": "/v1/x"}, receive, send))
    assert calls == [b"abcdefgh"] and sent[0]["status"] == 503
