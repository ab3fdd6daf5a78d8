"""The OpenAI Realtime transcription protocol (``/v1/realtime``) in-process on the fake backend (real VAD):
event shapes, both ``session.update`` shapes, refused events, commit and clear with turn_detection null,
deltas that add up to the completed transcript, keys, and the stream limit shared with the other protocol."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.signal import resample_poly
from starlette.websockets import WebSocketDisconnect

from tests.audio_utils import float_to_pcm16
from tests.fast.fake_backend import assert_heard
from tests.fast.ws import expect_close, url
from tests.ops_utils import scrape, value, wait_for

KEYS = ["key-one", "key-two"]
AUTH = {"Authorization": "Bearer key-one"}
SR = 16000
URL = "/v1/realtime?intent=transcription"
MANUAL = {"type": "session.update", "session": {"type": "transcription", "audio": {"input": {"turn_detection": None}}}}


@pytest.fixture
def srv(make_app):
    return make_app(auth={"api_keys": KEYS}, quotas={"max_streams_per_key": 2})


def to_24k(samples: np.ndarray) -> np.ndarray:
    return resample_poly(samples, 3, 2).astype(np.float32)


def append(ws, samples: np.ndarray, rate: int = 24000, frame_s: float = 0.1) -> None:
    step = int(frame_s * rate)
    for i in range(0, len(samples), step):
        audio = base64.b64encode(float_to_pcm16(samples[i : i + step])).decode()
        ws.send_text(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))


def send(ws, kind: str, **fields: Any) -> None:
    ws.send_text(json.dumps({"type": kind, **fields}))


def read_until(ws, kind: str, events: list[dict] | None = None) -> list[dict]:
    """Events up to and including the first of type ``kind``."""
    events = [] if events is None else events
    while True:
        event = ws.receive_json()
        assert isinstance(event["event_id"], str) and event["event_id"].startswith("event_")
        events.append(event)
        if event["type"] == kind:
            return events


def by_type(events: list[dict], kind: str) -> list[dict]:
    return [e for e in events if e["type"] == kind]


def check_items(events: list[dict]) -> dict[str, str]:
    """Each item's deltas add up to its completed transcript; item ids in OpenAI's style. -> id: transcript."""
    done = {e["item_id"]: e["transcript"] for e in by_type(events, "conversation.item.input_audio_transcription.completed")}
    for item_id, transcript in done.items():
        assert item_id.startswith("item_")
        deltas = [
            e["delta"] for e in by_type(events, "conversation.item.input_audio_transcription.delta") if e["item_id"] == item_id
        ]
        assert "".join(deltas) == transcript
    return done


def test_server_vad_session(make_app, jfk) -> None:
    """With word commits on (streaming.commit_words), so committed words are sent while items go on."""
    srv = make_app(auth={"api_keys": KEYS}, streaming={"commit_words": True})
    with srv.client.websocket_connect(URL, headers=AUTH) as ws:
        created = ws.receive_json()
        assert created["type"] == "session.created" and created["session"]["type"] == "transcription"
        send(ws, "session.update", session={"type": "transcription", "audio": {"input": {"transcription": {"language": "en"}}}})
        session = read_until(ws, "session.updated")[-1]["session"]
        assert session["id"] == created["session"]["id"] and session["id"].startswith("sess_")
        updated = session["audio"]["input"]
        assert updated["format"] == {"type": "audio/pcm", "rate": 24000}
        assert updated["transcription"]["language"] == "en" and updated["turn_detection"]["type"] == "server_vad"
        append(ws, to_24k(np.concatenate([jfk, np.zeros(2 * SR, np.float32)])))
        events: list[dict] = []
        while True:  # until the item that ends with jfk's last words (the trailing silence ends it) is completed
            read_until(ws, "conversation.item.input_audio_transcription.completed", events)
            if by_type(events, "input_audio_buffer.speech_stopped")[-1]["audio_end_ms"] > 10000:
                break
    done = check_items(events)
    assert len(done) > 1  # jfk's pauses end items
    assert_heard(" ".join(done.values()), jfk)
    for item_id in done:  # each item: started, stopped, committed (chained), then completed
        kinds = [e["type"] for e in events if e.get("item_id") == item_id]
        assert kinds[0] == "input_audio_buffer.speech_started" and kinds[-1].endswith("transcription.completed")
        assert kinds.index("input_audio_buffer.speech_stopped") < kinds.index("input_audio_buffer.committed")
    # committed words are sent as deltas while their segment (the item) goes on: before speech_stopped
    early = [i for i in done if [e["type"] for e in events if e.get("item_id") == i][1].endswith("transcription.delta")]
    assert early, "no words were committed before their item ended"
    added = by_type(events, "conversation.item.added")
    assert [a["item"]["id"] for a in added] == list(done) and added[0]["item"]["role"] == "user"
    committed = by_type(events, "input_audio_buffer.committed")
    assert committed[0]["previous_item_id"] is None
    assert [c["previous_item_id"] for c in committed[1:]] == [c["item_id"] for c in committed[:-1]]
    completed = by_type(events, "conversation.item.input_audio_transcription.completed")
    assert completed[0]["content_index"] == 0 and completed[0]["usage"]["type"] == "duration"
    started = by_type(events, "input_audio_buffer.speech_started")
    assert all(
        s["audio_start_ms"] < e["audio_end_ms"] for s, e in zip(started, by_type(events, "input_audio_buffer.speech_stopped"))
    )


def test_commit_and_clear_without_turn_detection(srv, jfk) -> None:
    with srv.client.websocket_connect(URL, headers=AUTH) as ws:
        ws.receive_json()
        ws.send_text(json.dumps(MANUAL))
        assert read_until(ws, "session.updated")[-1]["session"]["audio"]["input"]["turn_detection"] is None
        send(ws, "input_audio_buffer.commit", event_id="c0")  # nothing to commit yet
        err = read_until(ws, "error")[-1]["error"]
        assert err["code"] == "input_audio_buffer_commit_empty" and err["event_id"] == "c0"
        append(ws, to_24k(jfk[: 7 * SR]))  # several stream segments, one item
        send(ws, "input_audio_buffer.commit")
        first = read_until(ws, "conversation.item.input_audio_transcription.completed")
        append(ws, to_24k(jfk[7 * SR : 9 * SR]))  # cleared: never transcribed to the client
        send(ws, "input_audio_buffer.clear")
        cleared = read_until(ws, "input_audio_buffer.cleared")
        append(ws, to_24k(jfk[9 * SR :]))
        send(ws, "input_audio_buffer.commit")
        second = read_until(ws, "conversation.item.input_audio_transcription.completed")
    assert not by_type(cleared, "conversation.item.input_audio_transcription.completed")
    assert not by_type(cleared, "conversation.item.input_audio_transcription.delta")
    assert not by_type(first + second, "input_audio_buffer.speech_started")  # no VAD events without turn detection
    one, two = check_items(first), check_items(second)
    assert len(one) == len(two) == 1
    assert len(by_type(first, "conversation.item.input_audio_transcription.delta")) > 1  # a delta per final segment
    assert_heard(next(iter(one.values())), jfk[: 7 * SR])
    # a segment after a cut decodes a little audio before it and keeps the word across the cut
    assert_heard(next(iter(two.values())), jfk[int(8.5 * SR) :], offset=8.5)
    (c2,) = by_type(second, "input_audio_buffer.committed")
    assert c2["previous_item_id"] == next(iter(one))
    assert by_type(second, "conversation.item.input_audio_transcription.completed")[0]["usage"]["seconds"] == pytest.approx(
        2.0, abs=0.01
    )


def test_a_clear_right_after_a_commit_keeps_the_committed_item(srv, jfk) -> None:
    for turn in (None, {"type": "server_vad"}):
        with srv.client.websocket_connect(URL, headers=AUTH) as ws:
            ws.receive_json()
            send(ws, "session.update", session={"type": "transcription", "audio": {"input": {"turn_detection": turn}}})
            read_until(ws, "session.updated")
            append(ws, to_24k(jfk[: 4 * SR]))
            send(ws, "input_audio_buffer.commit")
            send(ws, "input_audio_buffer.clear")
            events = read_until(ws, "input_audio_buffer.cleared")
        # every item is completed before the clear's answer, the one the commit ended included
        assert_heard(" ".join(check_items(events).values()), jfk[: 4 * SR])


def test_beta_update_and_16k_extension(srv, jfk) -> None:
    beta = {
        "type": "transcription_session.update",
        "session": {
            "input_audio_format": "pcm16",
            "input_audio_transcription": {"model": "whisper-1", "language": "en", "prompt": "JFK"},
            "turn_detection": None,
        },
    }
    with srv.client.websocket_connect(URL, headers=AUTH) as ws:
        ws.receive_json()
        ws.send_text(json.dumps(beta))
        session = read_until(ws, "transcription_session.updated")[-1]["session"]
        assert session["input_audio_transcription"] == {"model": "whisper-1", "language": "en", "prompt": "JFK"}
        assert session["turn_detection"] is None
        fmt = {
            "type": "session.update",
            "session": {"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}},
        }
        ws.send_text(json.dumps(fmt))
        assert read_until(ws, "session.updated")[-1]["session"]["audio"]["input"]["format"]["rate"] == 16000
        append(ws, jfk[: 4 * SR], rate=SR)
        send(ws, "input_audio_buffer.commit")
        events = read_until(ws, "conversation.item.input_audio_transcription.completed")
    assert_heard(next(iter(check_items(events).values())), jfk[: 4 * SR])


@pytest.mark.parametrize(
    "event, code, param",
    [
        ({"type": "response.create"}, "invalid_event_type", "type"),
        ({"type": "input_audio_buffer.append", "audio": "not base64!"}, "invalid_audio", "audio"),
        ({"type": "input_audio_buffer.append", "audio": base64.b64encode(b"abc").decode()}, "invalid_audio", "audio"),
        (
            {
                "type": "session.update",
                "session": {"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcm", "rate": 44100}}}},
            },
            "unsupported_format",
            "session.audio.input.format.rate",
        ),
        (
            {
                "type": "session.update",
                "session": {"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcmu"}}}},
            },
            "unsupported_format",
            "session.audio.input.format.type",
        ),
        (
            {
                "type": "session.update",
                "session": {"type": "transcription", "audio": {"input": {"turn_detection": {"type": "semantic_vad"}}}},
            },
            "unsupported_turn_detection",
            "session.audio.input.turn_detection.type",
        ),
        (
            {"type": "session.update", "session": {"audio": {"input": {"turn_detection": {"threshold": 3}}}}},
            "invalid_value",
            "session.audio.input.turn_detection.threshold",
        ),
        (
            {"type": "session.update", "session": {"audio": {"input": {"transcription": {"language": "xx"}}}}},
            "invalid_value",
            "session.audio.input.transcription.language",
        ),
        (
            {"type": "session.update", "session": {"audio": {"input": {"transcription": {"model": "nope"}}}}},
            "model_not_found",
            "model",
        ),
        ({"type": "session.update", "session": {"type": "realtime"}}, "invalid_value", "session.type"),
    ],
)
def test_refused_events_keep_the_session(srv, jfk, event, code, param) -> None:
    with srv.client.websocket_connect(URL, headers=AUTH) as ws:
        ws.receive_json()
        ws.send_text(json.dumps({**event, "event_id": "evt_1"}))
        error = read_until(ws, "error")[-1]
        assert set(error) == {"type", "event_id", "error"}
        assert set(error["error"]) == {"type", "code", "message", "param", "event_id"}
        assert error["error"]["code"] == code and error["error"]["param"] == param
        assert error["error"]["type"] == "invalid_request_error" and error["error"]["message"]
        if error["error"]["code"] != "model_not_found":
            assert error["error"]["event_id"] == "evt_1"
        ws.send_text("not json")
        assert read_until(ws, "error")[-1]["error"]["code"] == "invalid_json"
        ws.send_text(json.dumps(MANUAL))  # the session goes on, with its config unchanged by the refused event
        session = read_until(ws, "session.updated")[-1]["session"]["audio"]["input"]
        assert session["format"]["rate"] == 24000 and session["transcription"]["model"] is None
        append(ws, to_24k(jfk[: 3 * SR]))
        send(ws, "input_audio_buffer.commit")
        events = read_until(ws, "conversation.item.input_audio_transcription.completed")
    assert_heard(next(iter(check_items(events).values())), jfk[: 3 * SR])


def test_update_after_audio_is_refused(srv, jfk) -> None:
    with srv.client.websocket_connect(URL, headers=AUTH) as ws:
        ws.receive_json()
        append(ws, to_24k(jfk[:SR]))
        ws.send_text(json.dumps(MANUAL))
        assert read_until(ws, "error")[-1]["error"]["code"] == "session_update_after_audio"
        send(ws, "session.update", session={"type": "transcription"})  # no change: accepted
        read_until(ws, "session.updated")


def test_keys(srv) -> None:
    with srv.client.websocket_connect(URL) as ws:
        errors, code = _close_events(ws)
    assert code == 1008 and errors[0]["error"]["type"] == "authentication_error"
    with srv.client.websocket_connect(URL, subprotocols=["realtime", "openai-insecure-api-key.key-two"]) as ws:
        assert ws.receive_json()["type"] == "session.created"  # the browser's way to send a key
    with srv.client.websocket_connect("/v1/realtime?intent=conversation", headers=AUTH) as ws:
        errors, code = _close_events(ws)
    assert code == 1008 and errors[0]["error"]["param"] == "intent"


def test_realtime_sessions_count_against_the_stream_limit(srv, jfk) -> None:
    client = srv.client
    with client.websocket_connect(URL, headers=AUTH) as a, client.websocket_connect(url(), headers=AUTH) as b:
        a.receive_json()
        b.send_bytes(b"\x00\x00" * 800)
        # both counted before the third connects (the streaming socket is registered after its accept)
        streams = lambda: value(scrape(client), "audio_service_active_streams", model="whisper-base")  # noqa: E731
        wait_for(lambda: streams() == 2, 10, "two open streams")
        with client.websocket_connect(URL, headers=AUTH) as c:  # one realtime + one streaming: key-one is full
            errors, code = _close_events(c)
        assert code == 1008 and errors[0]["error"]["code"] == "too_many_streams"
        with client.websocket_connect(url(), headers=AUTH) as d:
            assert expect_close(d)[1] == 1008
        with client.websocket_connect(URL, headers={"Authorization": "Bearer key-two"}) as e:
            assert e.receive_json()["type"] == "session.created"
            assert streams() == 3
    wait_for(
        lambda: value(scrape(client), "audio_service_active_streams", model="whisper-base") == 0, 10, "the slots to be freed"
    )


def _close_events(ws) -> tuple[list[dict], int | None]:
    events, code = _all_events(ws)
    return by_type(events, "error"), code


def test_over_the_audio_quota_the_open_item_is_committed_then_closed(make_app, jfk) -> None:
    client = make_app(auth={"api_keys": KEYS}, quotas={"audio_seconds_per_minute": 3}).client
    with client.websocket_connect(URL, headers=AUTH) as ws:
        ws.send_text(json.dumps(MANUAL))
        append(ws, to_24k(jfk[: 5 * SR]))
        events, code = _all_events(ws)
    assert code == 4029 and by_type(events, "error")[-1]["error"]["code"] == "rate_limit_exceeded"
    (text,) = check_items(events).values()  # the accepted 3 s, committed before the close
    assert_heard(text, jfk[: 3 * SR])


def _all_events(ws) -> tuple[list[dict], int | None]:
    events = []
    while True:
        try:
            events.append(ws.receive_json())
        except WebSocketDisconnect as closed:
            return events, closed.code


def test_drain_commits_the_open_item_then_closes_1012(srv, jfk) -> None:
    with srv.client.websocket_connect(URL, headers=AUTH) as ws:
        ws.receive_json()
        ws.send_text(json.dumps(MANUAL))
        read_until(ws, "session.updated")
        append(ws, to_24k(jfk[: 3 * SR]))
        srv.client.portal.start_task_soon(srv.services.ops.drain.run, 10.0)  # as on SIGTERM
        events, code = _all_events(ws)
    assert code == 1012 and by_type(events, "error")[-1]["error"]["code"] == "server_shutting_down"
    (text,) = check_items(events).values()
    assert_heard(text, jfk[: 3 * SR])


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
_turns = st.none() | st.fixed_dictionaries(
    {"type": st.sampled_from(["server_vad", "semantic_vad", "x"])}, optional={"threshold": _json}
)
_updates = st.fixed_dictionaries(
    {"type": st.sampled_from(["session.update", "transcription_session.update"])},
    optional={
        "session": st.fixed_dictionaries(
            {},
            optional={
                "type": st.sampled_from(["transcription", "realtime", 3]),
                "audio": st.fixed_dictionaries(
                    {},
                    optional={
                        "input": st.fixed_dictionaries(
                            {},
                            optional={
                                "format": st.fixed_dictionaries(
                                    {"type": st.sampled_from(["audio/pcm", "audio/pcmu"]), "rate": _json}
                                ),
                                "transcription": st.fixed_dictionaries(
                                    {},
                                    optional={
                                        "language": st.sampled_from(["en", "xx", None, 5]),
                                        "prompt": _json,
                                        "model": _json,
                                    },
                                ),
                                "turn_detection": _turns,
                            },
                        )
                    },
                ),
                "input_audio_format": _json,
                "turn_detection": _turns,
            },
        )
    },
)
_events = st.one_of(
    _updates.map(json.dumps),
    st.sampled_from(["input_audio_buffer.commit", "input_audio_buffer.clear", "response.create", None]).map(
        lambda t: json.dumps({"type": t, "event_id": "e"})
    ),
    st.binary(max_size=64).map(
        lambda b: json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(b).decode()})
    ),
    st.text(max_size=40).map(lambda a: json.dumps({"type": "input_audio_buffer.append", "audio": a})),
    st.text(max_size=40),  # mostly not JSON
    _json.map(json.dumps),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=st.lists(_events, max_size=12))
def test_fuzzed_events_leave_a_live_session(srv, jfk, sequence) -> None:
    """Any sequence of (mostly bad) events: only error events in OpenAI's shape, and the session still
    answers a clear after some audio."""
    with srv.client.websocket_connect(URL, headers=AUTH) as ws:
        ws.receive_json()
        for text in sequence:
            ws.send_text(text)
        append(ws, to_24k(jfk[:SR]))
        send(ws, "input_audio_buffer.clear")
        events = read_until(ws, "input_audio_buffer.cleared")
    for error in by_type(events, "error"):
        assert set(error["error"]) == {"type", "code", "message", "param", "event_id"}
        assert error["error"]["type"] != "server_error", error


def test_the_24k_resampler_gives_pcm16_samples_of_the_speech(jfk) -> None:
    """The server's 24k -> 16k resampler: the same samples whatever the chunking, each one a PCM16 value
    (what a streaming client could send: bench/realtime.py streams them for its same-audio comparison),
    and the round trip of real speech through 24 kHz close to the original (band-limited filters)."""
    from audio_service.audio.decode import pcm16_to_float
    from audio_service.audio.resample import PcmResampler

    pcm = float_to_pcm16(to_24k(jfk))

    def resampled(chunk_bytes: int) -> np.ndarray:
        r = PcmResampler(24000)
        return np.concatenate([*(r.push(pcm[i : i + chunk_bytes]) for i in range(0, len(pcm), chunk_bytes)), r.flush()])

    whole, chunked = resampled(len(pcm)), resampled(2 * 2400)
    assert np.array_equal(whole, chunked)
    assert np.array_equal(pcm16_to_float(float_to_pcm16(whole)), whole)
    assert len(whole) == len(jfk)
    error = whole - jfk
    assert 10 * np.log10(np.sum(jfk**2) / np.sum(error**2)) > 40  # dB; PCM16 alone limits jfk to 46
