"""``stream=true`` on /v1/audio/transcriptions read by the official OpenAI SDK (server-sent events)."""

from __future__ import annotations

from openai import OpenAI

from tests.audio_utils import JFK, JFK_TEXT, english_reading, wer, write_wav

SR = 16000


def test_openai_sdk_reads_progress_events(server, tmp_path) -> None:
    # 52 s of distinct sentences (two runs decode alike), several windows and final segments
    audio, reference = english_reading(pause_s=0.7, recordings=3)
    duration = len(audio) / SR
    assert 45 <= duration <= 60
    wav = write_wav(tmp_path / "reading.wav", audio)
    client = OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=600)
    with wav.open("rb") as f:
        plain = client.audio.transcriptions.create(model="whisper-1", file=f, language="en")
    with wav.open("rb") as f:
        events = list(client.audio.transcriptions.create(model="whisper-1", file=f, language="en", stream=True))

    types = [e.type for e in events]
    assert types[-1] == "transcript.text.done" and set(types[:-1]) == {"transcript.text.delta"}
    deltas = [e for e in events[:-1] if e.delta]
    assert len(deltas) >= 5, types  # one per final segment (three recordings)
    positions = [e.model_extra["audio_position_s"] for e in events]
    assert positions == sorted(positions) and 0 < positions[0] and abs(positions[-1] - duration) < 0.1
    done = events[-1]
    assert done.text == plain.text  # the same job through the same pipeline
    assert "".join(e.delta for e in deltas) == done.text
    assert wer(reference, done.text) <= 0.1


def test_verbose_json_stream_ends_with_the_timed_transcript(server) -> None:
    """With response_format=verbose_json the done event carries segments and words (the demo's timeline)."""
    import json

    import httpx

    data = {"stream": "true", "response_format": "verbose_json", "timestamp_granularities[]": ["word", "segment"]}
    with open(JFK, "rb") as f:
        r = httpx.post(f"{server.base_url}/v1/audio/transcriptions", files={"file": f}, data=data, timeout=300)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ")]
    done = events[-1]
    assert done["type"] == "transcript.text.done" and wer(JFK_TEXT, done["text"]) <= 0.1
    assert done["segments"] and done["words"] and abs(done["duration"] - 11.0) < 0.2
    assert " ".join(s["text"].strip() for s in done["segments"]) == done["text"]
