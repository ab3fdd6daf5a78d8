"""Keyterms and multichannel files against the real server and model, with httpx and the WebSocket client."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np

from tests.audio_utils import REALSPEECH, load_16k, normalize, realspeech_manifest, wer, write_wav
from tests.stream_client import stream

SR = 16000
NAME_FILE = "fr_fleurs_005.wav"  # "giancarlo fisichella a perdu le contrôle de sa voiture ..."
NAME = "Giancarlo Fisichella"  # whisper-base writes "Jean Carlo Fité là" without help


def post(server, file: tuple[str, bytes, str], data: dict) -> httpx.Response:
    return httpx.post(f"{server.base_url}/v1/audio/transcriptions", files={"file": file}, data=data, timeout=120)


def test_a_keyterm_fixes_a_misspelled_name(server) -> None:
    file = (NAME_FILE, (REALSPEECH / NAME_FILE).read_bytes(), "audio/wav")
    without = post(server, file, {"language": "fr"}).json()["text"]
    assert "fisichella" not in normalize(without)  # the name this test is about is one the model misses
    with_term = post(server, file, {"language": "fr", "keyterms": NAME}).json()["text"]
    assert "giancarlo fisichella" in normalize(with_term)
    reference = realspeech_manifest()[NAME_FILE]["reference_text"]
    assert wer(reference, with_term) <= wer(reference, without)


def test_a_keyterm_on_the_stream(server) -> None:
    samples = load_16k(REALSPEECH / NAME_FILE)
    without = asyncio.run(stream(server.ws_url, samples, pace=0, params={"language": "fr"}))
    assert "fisichella" not in normalize(without.text)
    r = asyncio.run(stream(server.ws_url, samples, pace=0, params={"language": "fr", "keyterms": NAME}))
    assert not r.errors, r.errors
    assert "giancarlo fisichella" in normalize(r.text)


def test_stereo_call_each_text_on_its_channel(server, tmp_path) -> None:
    """Two real recordings, one per channel, the second starting 3 s before the first ends."""
    rows = realspeech_manifest()
    names = ("en_librispeech_1089-134686-0000.wav", "en_librispeech_1995-1837-0001.wav")
    left, right = (load_16k(REALSPEECH / n) for n in names)
    start = len(left) - 3 * SR
    call = np.zeros((start + len(right), 2), np.float32)
    call[: len(left), 0], call[start:, 1] = left, right
    path = write_wav(tmp_path / "call.wav", call)
    data = {
        "language": "en",
        "multichannel": "true",
        "response_format": "verbose_json",
        "timestamp_granularities[]": ["word", "segment"],
    }
    r = post(server, ("call.wav", path.read_bytes(), "audio/wav"), data)
    assert r.status_code == 200, r.text
    body = r.json()
    for channel, name in enumerate(names):
        text = " ".join(s["text"] for s in body["segments"] if s["channel"] == channel)
        assert wer(rows[name]["reference_text"], text) <= 0.1, (channel, text)
        assert all(w["channel"] == channel for s in body["segments"] if s["channel"] == channel for w in s["words"])
    starts = [s["start"] for s in body["segments"]]
    assert starts == sorted(starts) and body["segments"][0]["channel"] == 0
