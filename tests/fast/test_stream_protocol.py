"""The streaming protocol in-process on the fake backend (real VAD): authentication, query parameters,
bad frames and their close codes, the per-key stream limit, the idle timeout, silence and segments."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.audio_utils import float_to_pcm16
from tests.fast.fake_backend import assert_heard, expected_text
from tests.fast.ws import Session, checkpoint, expect_close, send_audio, stream, url
from tests.ops_utils import scrape, value, wait_for
from tests.stream_client import check_segments

KEYS = ["key-one", "key-two"]
AUTH = {"Authorization": "Bearer key-one"}
SR = 16000


@pytest.fixture
def srv(make_app):
    return make_app(auth={"api_keys": KEYS}, quotas={"max_streams_per_key": 2}, streaming={"max_frame_bytes": 32000})


def assert_healthy(client, jfk) -> None:
    """A normal session on the same app gives every word of jfk, final."""
    r = stream(client, jfk, headers=AUTH, language="en")
    assert r.checkpoints == ["final"], r.errors
    assert_heard(r.text, jfk)
    check_segments(r)


def test_session_messages_segments_and_checkpoints(srv, jfk) -> None:
    with srv.client.websocket_connect(url(language="en"), headers=AUTH) as ws:
        send_audio(ws, jfk[: 5 * SR])
        checkpoint(ws, "cp5")
        ws.send_text(json.dumps({"event_id": "e1", "object": "stt.input.trace", "trace_id": "t5"}))
        send_audio(ws, jfk[5 * SR :])
        checkpoint(ws)
        r = Session().read_until(ws)
    assert r.checkpoints == ["cp5", "final"]
    traces = [m for _, m in r.messages if m.get("object") == "stt.output.trace"]
    assert [t["trace_id"] for t in traces] == ["t5"] and traces[0]["lag_s"] >= 0
    assert_heard(r.text, jfk)
    check_segments(r)
    assert any(not s["is_final"] for _, m in r.messages for s in m.get("segments", []))  # partials before finals


def test_api_key_in_query_and_missing_key(srv, jfk) -> None:
    r = stream(srv.client, jfk[: 4 * SR], Authorization="key-two")
    assert r.checkpoints == ["final"] and r.text
    with srv.client.websocket_connect(url()) as ws:
        errors, code = expect_close(ws)
    assert code == 1008 and errors[0]["type"] == "authentication_error"


@pytest.mark.parametrize(
    "query, param",
    [
        ({"text_timeout_seconds": "0.5"}, "text_timeout_seconds"),
        ({"language": "xx"}, "language"),
        ({"vad_kwargs": '{"threshold": 2}'}, "vad_kwargs"),
        ({"model": "nope"}, "model"),
        ({"diarize": "perhaps"}, "diarize"),
        ({"keyterms": ",".join(f"t{i}" for i in range(101))}, "keyterms"),
        ({"hotwords": "x" * 501}, "hotwords"),
        ({"keyterms": "Quilter", "hotwords": "Quilter"}, "keyterms"),
    ],
)
def test_bad_query_parameters(srv, query, param) -> None:
    with srv.client.websocket_connect(url(**query), headers=AUTH) as ws:
        errors, code = expect_close(ws)
    assert code == 1008
    assert errors[0]["param"] == param and errors[0]["message"]


@pytest.mark.parametrize(
    "kind, code, error_code",
    [
        ("odd_length", 1007, "invalid_frame"),
        ("oversized", 1009, "frame_too_large"),
        ("non_json", 1007, "invalid_frame"),
        ("unknown_type", 1003, "unknown_message_type"),
        ("audio_after_final", 1008, "stream_finished"),
    ],
)
def test_bad_input_then_healthy_session(srv, jfk, kind, code, error_code) -> None:
    with srv.client.websocket_connect(url(language="en"), headers=AUTH) as ws:
        send_audio(ws, jfk[: 2 * SR])
        if kind == "odd_length":
            ws.send_bytes(float_to_pcm16(jfk[:3201])[:3201])
        elif kind == "oversized":
            ws.send_bytes(b"\x00\x00" * 16001)  # 32002 bytes > streaming.max_frame_bytes=32000
        elif kind == "non_json":
            ws.send_text("this is not json")
        elif kind == "unknown_type":
            ws.send_text(json.dumps({"object": "stt.input.something", "x": 1}))
        elif kind == "audio_after_final":
            checkpoint(ws)
            Session().read_until(ws)  # the final answer first: the stream is finished
            ws.send_bytes(float_to_pcm16(jfk[:1600]))
        errors, close_code = expect_close(ws)
    assert close_code == code
    assert errors and errors[-1]["code"] == error_code and errors[-1]["type"] and errors[-1]["message"]
    assert set(errors[-1]) == {"message", "type", "param", "code"}
    assert_healthy(srv.client, jfk)


def test_too_many_streams_for_a_key(srv, jfk) -> None:
    client = srv.client
    with client.websocket_connect(url(language="en"), headers=AUTH) as a, client.websocket_connect(url(), headers=AUTH) as b:
        a.send_bytes(b"\x00\x00" * 800)
        b.send_bytes(b"\x00\x00" * 800)
        with client.websocket_connect(url(), headers=AUTH) as c:
            errors, code = expect_close(c)
        assert code == 1008 and errors[0]["code"] == "too_many_streams"
        # the other key is unaffected while key-one is at its limit
        other = stream(client, jfk, headers={"Authorization": "Bearer key-two"}, language="en")
        assert_heard(other.text, jfk)
        checkpoint(a, "still-here")  # the two open streams still work
        assert Session().read_until(a, "still-here").checkpoints == ["still-here"]
    wait_for(lambda: value(scrape(client), "audio_service_active_streams") == 0, 10, "the slots to be freed")
    assert_healthy(client, jfk)  # slots were freed when a and b closed


def test_leaving_without_final_frees_the_slot(srv, jfk) -> None:
    for _ in range(3):  # more than the key's limit of 2: slots must be released
        with srv.client.websocket_connect(url(language="en"), headers=AUTH) as ws:
            send_audio(ws, jfk[: 4 * SR])
        wait_for(lambda: value(scrape(srv.client), "audio_service_active_streams") == 0, 10, "the slot to be freed")
    assert_healthy(srv.client, jfk)


def test_idle_timeout_closes_a_stream_with_no_frames(make_app) -> None:
    client = make_app(streaming={"idle_timeout_s": 0.5}).client
    with client.websocket_connect(url()) as ws:
        ws.send_bytes(b"\x00\x00" * 800)
        errors, code = expect_close(ws)
    assert code == 1000 and errors[0]["code"] == "idle_timeout"


def test_sixty_seconds_of_silence_between_two_speeches(srv, jfk) -> None:
    """60 s of near-silent room between two speeches, then a pause with no frames at all (the client
    waits for the first speech's final segment): the socket stays open, nothing is transcribed in the
    silence, and the second speech is placed after it on the stream's clock."""
    silence = (np.random.default_rng(0).standard_normal(60 * SR) * 1e-4).astype(np.float32)
    r = Session()
    with srv.client.websocket_connect(url(language="en"), headers=AUTH) as ws:
        send_audio(ws, jfk[: 5 * SR])
        send_audio(ws, silence)
        while not any(s["is_final"] for s in r.segments.values()):  # no frames sent while waiting
            r.merge(0.0, ws.receive_json())
        checkpoint(ws, "after-silence")
        send_audio(ws, jfk[5 * SR :])
        checkpoint(ws)
        r.read_until(ws)
    assert r.checkpoints == ["after-silence", "final"] and not r.errors
    check_segments(r)
    assert not [s for s in r.segments.values() if 6.0 < s["start"] < 64.0], r.segments
    assert max(s["end"] for s in r.segments.values()) > 65.0
    assert_heard(r.text, np.concatenate([jfk[: 5 * SR], silence, jfk[5 * SR :]]))


def test_skip_vad_and_vad_kwargs(srv, jfk) -> None:
    """Without VAD the stream is one segment per max length / checkpoint; a long endpoint merges pauses."""
    default = stream(srv.client, jfk, headers=AUTH, language="en")
    assert len(default.segments) > 1  # jfk's pauses end segments
    r = stream(srv.client, jfk, headers=AUTH, language="en", skip_vad="true")
    assert len(r.segments) == 1 and r.text.split() == expected_text(jfk).split()  # no VAD: every sounding half second
    r = stream(srv.client, jfk, headers=AUTH, language="en", vad_kwargs=json.dumps({"min_silence_duration_ms": 3000}))
    assert len(r.segments) == 1


def committed_words(r) -> dict[tuple[int, int], tuple[dict, bool]]:
    """Each (segment id, position) of a word first sent with ``is_final`` on the word -> (that word, whether its
    segment was final then); every later message must carry the same word there."""
    first: dict[tuple[int, int], tuple[dict, bool]] = {}
    for _, msg in r.messages:
        for seg in msg.get("segments", []):
            for k, w in enumerate(seg.get("words", [])):
                if (seg["id"], k) in first:
                    assert w == first[(seg["id"], k)][0], ("a final word changed", seg)
                elif w["is_final"]:
                    first[(seg["id"], k)] = (w, seg["is_final"])
                assert w["is_final"] or not seg["is_final"], "every word of a final segment is final"
    return first


def test_committed_words_are_final_before_their_segment_and_never_change(make_app, jfk) -> None:
    app = make_app(streaming={"commit_words": True})
    with app.client.websocket_connect(url(language="en")) as ws:
        for i in range(0, len(jfk), SR // 10):  # a checkpoint now and then: the partials of the audio before it run
            send_audio(ws, jfk[i : i + SR // 10])
            if i % SR == 0:
                ws.send_text(json.dumps({"object": "stt.input.trace", "trace_id": i}))
        checkpoint(ws)
        r = Session().read_until(ws)
    first = committed_words(r)
    assert any(not seg_final for _, seg_final in first.values()), "words committed while their segment was open"
    final_words = [(sid, k) for sid, seg in r.segments.items() for k in range(len(seg["words"]))]
    assert sorted(first) == sorted(final_words)
    assert_heard(r.text, jfk)
    check_segments(r)


def test_without_word_commits_words_are_final_with_their_segment(make_app, jfk) -> None:
    app = make_app()  # streaming.commit_words is off by default
    r = stream(app.client, jfk, language="en")
    assert all(seg_final for _, seg_final in committed_words(r).values())
    assert_heard(r.text, jfk)
