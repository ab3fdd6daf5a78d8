"""POST /v1/audio/alignments and aligner names on the real server."""

from __future__ import annotations

import httpx
import pytest

from tests.audio_utils import JFK, JFK_TEXT, normalize, wer


def align(server, data, audio=JFK) -> httpx.Response:
    with open(audio, "rb") as f:
        return httpx.post(f"{server.base_url}/v1/audio/alignments", files={"file": (audio.name, f)}, data=data, timeout=120)


def test_jfk_alignment_returns_every_word_in_order_with_monotone_times(server):
    r = align(server, {"text": JFK_TEXT})
    assert r.status_code == 200, r.text
    assert r.headers["x-audio-service-aligner"] == "whisper"
    body = r.json()
    words = body["words"]
    assert normalize(" ".join(w["word"] for w in words)) == normalize(JFK_TEXT)
    starts = [w["start"] for w in words]
    assert starts == sorted(starts)
    assert all(w["start"] <= w["end"] <= body["duration"] + 0.01 for w in words)
    # "ask" (the 6th word) comes after the pause following "Americans," at about 2.5-3.5 s
    assert 2.0 <= words[5]["start"] <= 3.9, words[5]
    assert wer(JFK_TEXT, body["text"]) == 0.0


@pytest.mark.parametrize(("fmt", "head"), [("srt", "1\n00:00:00,"), ("vtt", "WEBVTT")])
def test_alignment_subtitle_formats(server, fmt, head):
    r = align(server, {"text": JFK_TEXT, "response_format": fmt})
    assert r.status_code == 200, r.text
    assert r.text.startswith(head) and "Americans" in r.text and "-->" in r.text


@pytest.mark.parametrize("name", ["tdnn_ffn", "mms_fa", "gentle"])
def test_reference_aligner_names_are_served(server, name):
    r = align(server, {"text": JFK_TEXT, "alignment_model": name})
    assert r.status_code == 200, r.text
    assert r.headers["x-audio-service-aligner"] == "whisper"  # no MMS weights configured here
    assert len(r.json()["words"]) == 22


def test_transcription_says_which_aligner_ran(server):
    data = {"response_format": "verbose_json", "timestamp_granularities[]": "word", "alignment_model": "tdnn_ffn"}
    with open(JFK, "rb") as f:
        r = httpx.post(f"{server.base_url}/v1/audio/transcriptions", files={"file": ("jfk.flac", f)}, data=data, timeout=120)
    assert r.status_code == 200, r.text
    assert r.headers["x-audio-service-aligner"] == "whisper"
    assert len(r.json()["words"]) >= 20


BAD_INPUT = [
    ({"text": ""}, "text", "empty"),
    ({"text": "   "}, "text", "empty"),
    ({}, "text", "text"),
    ({"text": " ".join([JFK_TEXT] * 40)}, "text", "far longer"),
    ({"text": JFK_TEXT, "alignment_model": "wav2vec9"}, "alignment_model", "mms_fa"),
    ({"text": JFK_TEXT, "response_format": "docx"}, "response_format", "verbose_json"),
]


@pytest.mark.parametrize(("data", "param", "needle"), BAD_INPUT)
def test_bad_alignment_input_is_4xx(server, data, param, needle):
    r = align(server, data)
    assert 400 <= r.status_code < 500, r.text
    err = r.json()["error"]
    assert err["param"] == param and needle in err["message"], err


def test_alignment_still_served_after_every_bad_input(server):
    """Each bad input once more, then one alignment (one is enough: a broken server stays broken)."""
    for data, _, _ in BAD_INPUT:
        assert 400 <= align(server, data).status_code < 500
    ok = align(server, {"text": JFK_TEXT})
    assert ok.status_code == 200 and len(ok.json()["words"]) == 22
