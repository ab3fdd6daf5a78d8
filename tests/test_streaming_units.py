"""Pure-logic tests of the streaming protocol and patches, and the engine in-process with the real model."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from audio_service.errors import InvalidRequestError
from audio_service.schema import Audio
from audio_service.streaming.patches import patch_message
from audio_service.streaming.protocol import (
    FrameTooLargeError,
    InvalidFrameError,
    UnknownMessageError,
    close_code_for,
    parse_audio_frame,
    parse_client_text,
    parse_options,
)
from audio_service.streaming.values import Checkpoint, SegmentView, Trace, WordView
from audio_service.vad.params import VadParams
from tests.audio_utils import JFK, JFK_TEXT, load_16k, wer


def test_parse_options_defaults_and_values():
    o = parse_options({}, VadParams(), 5.0)
    assert o.language is None and o.text_timeout_s == 5.0 and o.vad.min_silence_duration_ms == 500
    o = parse_options(
        {
            "language": "DE",
            "temperature": "0.2",
            "text_timeout_seconds": "2.5",
            "skip_vad": "true",
            "vad_kwargs": '{"min_silence_duration_ms": 800}',
            "unknown": "ignored",
            "timestamp_granularities": "segment",
        },
        VadParams(),
        5.0,
    )
    assert (o.language, o.temperature, o.text_timeout_s, o.skip_vad) == ("de", 0.2, 2.5, True)
    assert o.vad.min_silence_duration_ms == 800 and o.word_timestamps is False


@pytest.mark.parametrize(
    "query, param",
    [
        ({"text_timeout_seconds": "30"}, "text_timeout_seconds"),
        ({"temperature": "hot"}, "temperature"),
        ({"response_format": "srt"}, "response_format"),
        ({"skip_vad": "maybe"}, "skip_vad"),
        ({"vad_kwargs": "[1]"}, "vad_kwargs"),
        ({"vad_kwargs": '{"bogus": 1}'}, "vad_kwargs"),
    ],
)
def test_parse_options_rejects_bad_values(query, param):
    with pytest.raises(InvalidRequestError) as info:
        parse_options(query, VadParams(), 5.0)
    assert info.value.param == param and close_code_for(info.value) == 1008


def test_client_messages_and_close_codes():
    assert parse_client_text('{"checkpoint_id": "final"}') == Checkpoint("final")
    assert parse_client_text('{"checkpoint_id": "final"}').is_final
    assert parse_client_text(json.dumps({"event_id": 1, "object": "stt.input.trace", "trace_id": "t"})) == Trace("t", 1)
    for text, exc, code in (
        ("nope", InvalidFrameError, 1007),
        ("[1]", InvalidFrameError, 1007),
        ('{"type": "x"}', UnknownMessageError, 1003),
    ):
        with pytest.raises(exc) as info:
            parse_client_text(text)
        assert close_code_for(info.value) == code
    assert parse_audio_frame(b"\x00\x40" * 4, 100).tolist() == [0.5] * 4
    with pytest.raises(InvalidFrameError):
        parse_audio_frame(b"\x00" * 3, 100)
    with pytest.raises(FrameTooLargeError) as info:
        parse_audio_frame(b"\x00" * 102, 100)
    assert close_code_for(info.value) == 1009


def test_patches_are_in_id_order_and_carry_word_finality():
    w = (WordView("hi", 0.0, 0.5, 0.9),)
    final = SegmentView(0, "hi", 0.0, 0.5, True, w)
    msg = patch_message([SegmentView(1, "b", 1, 2, False), final])
    assert [s["id"] for s in msg["segments"]] == [0, 1]
    assert msg["segments"][0]["words"][0]["is_final"] is True
    assert patch_message([]) is None


class OneSpeakerPerLoudness:
    """A real (if crude) tracker: labels segments by their RMS level, consistently within a stream."""

    def __init__(self) -> None:
        self.calls = []

    def assign(self, audio: Audio, start: float, end: float) -> str:
        self.calls.append((start, end))
        rms = float(np.sqrt(np.mean(audio.slice(start, end).samples ** 2)))
        return "SPEAKER_00" if rms > 0.01 else "SPEAKER_01"


def test_engine_in_process_with_speaker_tracker():
    """Session + engine + the packaged model, no server: final segments carry the tracker's label."""
    from audio_service.models.registry import ModelRegistry
    from audio_service.settings import Settings
    from audio_service.streaming.engine import StreamingEngine
    from audio_service.streaming.session import StreamSession
    from audio_service.streaming.values import SessionConfig

    model = ModelRegistry(Settings()).get()
    engine = StreamingEngine(batching=True)
    engine.start()
    messages, done = [], threading.Event()

    def emit(m):
        messages.append(m)
        if isinstance(m, dict) and m.get("checkpoint_id") == "final":
            done.set()

    tracker = OneSpeakerPerLoudness()
    session = StreamSession(
        parse_options({"language": "en", "diarize": "true"}, VadParams(), 5.0), model, SessionConfig(), emit, tracker
    )
    engine.add(session)
    audio = load_16k(JFK)
    for i in range(0, len(audio), 1600):
        session.feed(audio[i : i + 1600])
        engine.wake()
    session.mark(Checkpoint("final"))
    engine.wake()
    assert done.wait(60)
    engine.remove(session)
    import asyncio

    asyncio.run(engine.stop())
    finals = {s["id"]: s for m in messages if isinstance(m, dict) for s in m.get("segments", []) if s["is_final"]}
    assert finals and all(s["speaker_id"] == "SPEAKER_00" for s in finals.values())
    assert all(w["speaker_id"] == "SPEAKER_00" for s in finals.values() for w in s["words"])
    assert len(tracker.calls) == len(finals)
    assert wer(JFK_TEXT, " ".join(s["text"] for _, s in sorted(finals.items()))) <= 0.12
