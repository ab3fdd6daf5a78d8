"""Keyterms reach the decoder of both endpoints, and multichannel files are transcribed channel by
channel: in-process on the fake backend (its text names each half second of sound by its start)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.audio_utils import write_wav
from tests.fast.fake_backend import assert_heard, expected_text
from tests.fast.ws import stream
from tests.http_utils import TRANSLATIONS, assert_error, jfk_file, post

SR = 16000


def wav_file(tmp_path, samples: np.ndarray, name: str = "call.wav") -> tuple[str, bytes, str]:
    return (name, write_wav(tmp_path / name, samples).read_bytes(), "audio/wav")


@pytest.mark.parametrize(
    "data, hotwords",
    [
        # keyterms: a plain decode, then one with them as hotwords (pipeline.keyterms merges the two)
        ({"keyterms": ["Quilter", "Dashwood"]}, [None, "Quilter, Dashwood."]),  # a repeated field
        ({"keyterms[]": ["Quilter", "Dashwood"]}, [None, "Quilter, Dashwood."]),
        ({"keyterms": "Quilter, Dashwood"}, [None, "Quilter, Dashwood."]),  # one comma-separated field
        ({"hotwords": "Mr. Quilter, apostle"}, ["Mr. Quilter, apostle"]),  # free text: one decode with it
        ({}, [None]),
    ],
)
def test_keyterms_reach_the_batch_decoder(app, data, hotwords) -> None:
    r = post(app.client, jfk_file(), data)
    assert r.status_code == 200, r.text
    assert [o.hotwords for o in app.fake.batch_options] == hotwords


def test_keyterms_on_translations(app) -> None:
    r = post(app.client, jfk_file(), {"keyterms": "Quilter"}, path=TRANSLATIONS)
    assert r.status_code == 200, r.text
    assert [o.hotwords for o in app.fake.batch_options] == [None, "Quilter."]
    assert_error(post(app.client, jfk_file(), {"hotwords": "x" * 501}, path=TRANSLATIONS), 400, "hotwords")


def test_keyterms_reach_every_stream_window(app, jfk) -> None:
    r = stream(app.client, jfk[: 4 * SR], language="en", keyterms="Quilter,Dashwood")
    assert r.checkpoints == ["final"], r.errors
    assert app.fake.stream_hotwords and set(app.fake.stream_hotwords) == {"Quilter, Dashwood."}


def placed(speech: np.ndarray, start_s: float, total_s: float = 8.0) -> np.ndarray:
    out = np.zeros(int(total_s * SR), np.float32)
    out[int(start_s * SR) : int(start_s * SR) + len(speech)] = speech
    return out


def stereo(tmp_path, jfk) -> tuple[tuple[str, bytes, str], np.ndarray, np.ndarray]:
    """Speech (for the real VAD) on channel 1 at 0-3 s, then on channel 0 at 4-7 s: a caller speaks
    first, the agent answers."""
    left, right = placed(jfk[int(3.5 * SR) : int(6.5 * SR)], 4.0), placed(jfk[: 3 * SR], 0.0)
    return wav_file(tmp_path, np.stack([left, right], axis=1)), left, right


def channel_text(body: dict, channel: int) -> str:
    return " ".join(s["text"].strip() for s in body["segments"] if s["channel"] == channel)


def test_multichannel_segments_carry_their_channel(app, tmp_path, jfk) -> None:
    file, left, right = stereo(tmp_path, jfk)
    data = {"multichannel": "true", "response_format": "verbose_json", "timestamp_granularities[]": ["word", "segment"]}
    body = post(app.client, file, data).json()
    assert_heard(channel_text(body, 0), left)  # only channel 0's sound: nothing mixed in from channel 1
    assert_heard(channel_text(body, 1), right)
    channels = [s["channel"] for s in body["segments"]]
    assert channels == sorted(channels, reverse=True)  # time order: channel 1 spoke first
    assert [s["start"] for s in body["segments"]] == sorted(s["start"] for s in body["segments"])
    assert [s["id"] for s in body["segments"]] == list(range(len(channels)))
    assert {w["channel"] for w in body["words"]} == {0, 1}
    assert body["text"] == f"{channel_text(body, 1)} {channel_text(body, 0)}"
    assert len(app.fake.batch_options) == 2  # one decode per channel
    # without multichannel the channels are mixed down, as before: no channel in the output
    mixed = post(app.client, file, {"response_format": "verbose_json"}).json()
    assert all("channel" not in s for s in mixed["segments"])


def test_multichannel_subtitles_and_text(app, tmp_path, jfk) -> None:
    file, _, _ = stereo(tmp_path, jfk)
    body = post(app.client, file, {"multichannel": "true", "response_format": "verbose_json"}).json()
    srt = post(app.client, file, {"multichannel": "true", "response_format": "srt"}).text
    for s in body["segments"]:
        assert f"[channel {s['channel']}] {s['text'].strip()}" in srt
    assert srt.index("[channel 1]") < srt.index("[channel 0]")
    vtt = post(app.client, file, {"multichannel": "true", "response_format": "vtt"}).text
    assert vtt.startswith("WEBVTT") and "[channel 0]" in vtt and "[channel 1]" in vtt
    text = post(app.client, file, {"multichannel": "true", "response_format": "json"}).json()["text"]
    assert text == body["text"]


def test_multichannel_mono_file_is_channel_zero(app, tmp_path, jfk) -> None:
    body = post(app.client, wav_file(tmp_path, jfk), {"multichannel": "true", "response_format": "verbose_json"}).json()
    assert body["segments"] and {s["channel"] for s in body["segments"]} == {0}
    assert body["text"] == expected_text(jfk)


def test_multichannel_channel_count_is_bounded(app, tmp_path, jfk) -> None:
    nine = np.stack([placed(jfk[: 2 * SR], 0.0, 2.0)] * 9, axis=1)
    r = post(app.client, wav_file(tmp_path, nine), {"multichannel": "true"})
    err = assert_error(r, 400, "multichannel")
    assert "8" in err["message"] and "9" in err["message"]
    assert app.fake.batch_gate.passed == 0
    eight = np.stack([placed(jfk[: 2 * SR], 0.5 * c, 6.0) for c in range(8)], axis=1)
    body = post(app.client, wav_file(tmp_path, eight), {"multichannel": "true", "response_format": "verbose_json"}).json()
    assert sorted({s["channel"] for s in body["segments"]}) == list(range(8))
