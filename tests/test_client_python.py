"""The Python client against the real server: batch, streaming (vs. a hand-written WebSocket client), errors."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import audio_service_client as asc
import httpx
import numpy as np
import pytest
import srt
import websockets

from tests.audio_utils import JFK, JFK_TEXT, TWO_SPEAKERS, load_16k, normalize, wer

EXPECTED_API = {
    "APIConnectionError",
    "APIStatusError",
    "AlignParams",
    "AsyncClient",
    "AsyncTranscriptionStream",
    "AudioServiceError",
    "AuthenticationError",
    "BadRequestError",
    "Checkpoint",
    "Client",
    "InternalServerError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitError",
    "Segment",
    "StreamError",
    "StreamSegment",
    "StreamTranscript",
    "StreamUpdate",
    "StreamWord",
    "TraceProbe",
    "TranscribeParams",
    "Transcription",
    "TranscriptionStream",
    "TranslateParams",
    "Word",
    "__version__",
    "decode_file",
    "to_pcm16",
}


def test_public_api_is_explicit():
    assert set(asc.__all__) == EXPECTED_API
    assert len(asc.__all__) == len(set(asc.__all__))
    for name in asc.__all__:
        assert getattr(asc, name) is not None
    # every error carries the server's fields
    err = asc.BadRequestError("m", type="invalid_request_error", param="p", code="c", status_code=400)
    assert (err.message, err.type, err.param, err.code, err.status_code) == ("m", "invalid_request_error", "p", "c", 400)
    assert issubclass(asc.StreamError, asc.AudioServiceError) and issubclass(asc.BadRequestError, asc.APIStatusError)


@pytest.fixture(scope="module")
def client(server):
    with asc.Client(server.base_url) as c:
        yield c


def test_transcribe_verbose_json_typed(client):
    sent: list[tuple[int, int | None]] = []
    t = client.transcribe(
        JFK,
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
        language="en",
        on_progress=lambda n, total: sent.append((n, total)),
    )
    assert isinstance(t, asc.Transcription)
    assert wer(JFK_TEXT, t.text) <= 0.1
    assert t.language == "en" and t.task == "transcribe" and 10.5 < t.duration < 11.5
    assert t.segments and all(isinstance(s, asc.Segment) for s in t.segments)
    assert t.words and all(isinstance(w, asc.Word) for w in t.words)
    assert [w.start for w in t.words] == sorted(w.start for w in t.words)
    assert t.headers.get("x-audio-service-model")  # provenance headers reach the caller
    size = JFK.stat().st_size
    assert sent and sent[-1] == (size, size)  # the progress callback saw the whole upload


def test_transcribe_text_formats(client):
    subs = list(srt.parse(client.transcribe(str(JFK), response_format="srt")))
    assert subs and wer(JFK_TEXT, " ".join(s.content for s in subs)) <= 0.1
    assert client.transcribe(JFK.read_bytes(), response_format="vtt").startswith("WEBVTT")
    assert isinstance(client.transcribe(JFK, response_format="text"), str)


def test_translate(client):
    t = client.translate(JFK, response_format="verbose_json")
    assert t.task == "translate" and wer(JFK_TEXT, t.text) <= 0.15


def test_async_client_batch(server):
    async def run():
        async with asc.AsyncClient(server.base_url) as ac:
            with open(JFK, "rb") as fh:
                t = await ac.transcribe(fh, language="en")
            models = await ac.models()
            return t, models

    t, models = asyncio.run(run())
    assert wer(JFK_TEXT, t.text) <= 0.1
    assert any(m["id"] == "whisper-base" for m in models)


def test_error_raises_with_server_message(client, server):
    raw = httpx.post(
        f"{server.base_url}/v1/audio/transcriptions", files={"file": JFK.read_bytes()}, data={"language": "xx"}
    ).json()["error"]
    with pytest.raises(asc.BadRequestError) as info:
        client.transcribe(JFK, language="xx")
    e = info.value
    assert (e.message, e.type, e.param, e.code, e.status_code) == (raw["message"], raw["type"], raw["param"], raw["code"], 400)
    with pytest.raises(asc.NotFoundError):
        client.transcribe(JFK, model="no-such-model")
    with pytest.raises(TypeError):
        client.transcribe(JFK, langauge="en")  # a typo is caught before any request


def test_stream_error_raises_with_server_message(client):
    with pytest.raises(asc.StreamError) as info:
        client.stream(JFK, language="xx").result()
    assert "language" in info.value.message and info.value.param == "language"
    assert info.value.close_code not in (None, 1000)


async def _stream_by_hand(ws_url: str, pcm: np.ndarray) -> dict[int, dict]:
    """The protocol written out with plain ``websockets``: 100 ms frames, final checkpoint, merge by id."""
    state: dict[int, dict] = {}
    async with websockets.connect(f"{ws_url}/v1/audio/transcriptions/streaming?language=en", max_size=None) as ws:

        async def send():
            data = pcm.astype("<i2").tobytes()
            for i in range(0, len(data), 3200):
                await ws.send(data[i : i + 3200])
            await ws.send(json.dumps({"checkpoint_id": "final"}))

        sender = asyncio.create_task(send())
        async for raw in ws:
            msg = json.loads(raw)
            if msg.get("checkpoint_id") == "final":
                break
            for seg in msg.get("segments", []):
                state[seg["id"]] = seg
        await sender
    return state


def test_stream_file_matches_hand_written_client(client, server):
    stream = client.stream(JFK, language="en")
    kinds = [u.kind for u in stream]
    t = stream.transcript
    assert kinds[-1] == "checkpoint" and "segments" in kinds
    assert t.segments and all(s.final for s in t.segments.values()) and not t.changed_after_final
    assert wer(JFK_TEXT, t.final_text) <= 0.12
    by_hand = asyncio.run(_stream_by_hand(server.ws_url, (load_16k(JFK) * 32767).astype(np.int16)))
    hand_text = " ".join(by_hand[k]["text"].strip() for k in sorted(by_hand))
    assert normalize(hand_text) == normalize(t.final_text)


def test_async_stream_iterator_with_checkpoint_and_trace(server):
    pcm = (load_16k(JFK) * 32767).astype(np.int16)

    async def chunks():
        for i in range(0, len(pcm), 1600):
            if i == 16000 * 3:
                yield asc.TraceProbe("t1")
            if i == 16000 * 6:
                yield asc.Checkpoint("mid")
            yield pcm[i : i + 1600]  # numpy chunks are converted to PCM16LE

    async def run():
        async with asc.AsyncClient(server.base_url) as ac:
            stream = ac.stream(chunks(), language="en")
            updates = [u async for u in stream]
            return updates, stream.transcript

    updates, transcript = asyncio.run(run())
    assert any(u.kind == "trace" and u.trace_id == "t1" for u in updates)
    checkpoints = [u.checkpoint_id for u in updates if u.kind == "checkpoint"]
    assert checkpoints == ["mid", "final"]
    # the mid-speech checkpoint forces the open segment final mid-sentence, which costs a word or two
    assert wer(JFK_TEXT, transcript.final_text) <= 0.2


def test_stream_numpy_array_at_another_rate(client):
    audio = load_16k(TWO_SPEAKERS)[: 16000 * 15]
    # resample to 8 kHz to exercise the client-side resampler; the server still gets 16 kHz PCM16
    at_8k = audio[::2].copy()
    t = client.stream(at_8k, sample_rate=8000).result()
    assert len(t.final_text.split()) >= 10 and all(s.final for s in t.segments.values())


def test_cli_transcribe_srt(server):
    out = subprocess.run(
        [sys.executable, "-m", "audio_service_client.cli", "--url", server.base_url, "transcribe", str(JFK), "--format", "srt"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    subs = list(srt.parse(out))
    assert subs and wer(JFK_TEXT, " ".join(s.content for s in subs)) <= 0.1


def test_cli_error_exit_code(server):
    proc = subprocess.run(
        [sys.executable, "-m", "audio_service_client.cli", "--url", server.base_url, "transcribe", str(JFK), "--language", "xx"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1 and "unsupported language" in proc.stderr


def test_api_key_paths(keyed_server):
    """Header auth for HTTP and streams, the query-parameter key (browser style), and a wrong key."""
    srv = keyed_server
    with asc.Client(srv.base_url, api_key="key-one") as ok:
        assert wer(JFK_TEXT, ok.transcribe(JFK, language="en").text) <= 0.1
        assert wer(JFK_TEXT, ok.stream(JFK, language="en").result().final_text) <= 0.12
    with asc.Client(srv.base_url, api_key="key-one", key_in_query=True) as query_key:
        assert query_key.stream(JFK, language="en").result().segments
    with asc.Client(srv.base_url, api_key="wrong") as bad:
        with pytest.raises(asc.AuthenticationError) as info:
            bad.transcribe(JFK)
        assert info.value.status_code == 401 and "API key" in info.value.message
        with pytest.raises(asc.AudioServiceError) as sinfo:  # StreamError, or the refused handshake's status
            bad.stream(JFK).result()
        assert "API key" in sinfo.value.message


def test_cli_stream_plain(server):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "audio_service_client.cli",
            "--url",
            server.base_url,
            "stream",
            str(JFK),
            "--speed",
            "0",
            "--plain",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert wer(JFK_TEXT, " ".join(out.split())) <= 0.12


def test_live_view_styles_partial_apart_from_final():
    from audio_service_client.cli import render_transcript

    t = asc.StreamTranscript()
    t.apply([asc.StreamSegment(id=0, text="ask not", is_final=True), asc.StreamSegment(id=1, text="what your", is_final=False)])
    spans = {render_transcript(t).plain[s.start : s.end].strip(): str(s.style) for s in render_transcript(t).spans}
    assert spans["ask not"] == "default" and "dim" in spans["what your"]
    assert t.final_text == "ask not" and t.partial_text == "what your" and t.state == {0: "ask not", 1: "what your"}
    # a final segment that changes is recorded (the protocol forbids it)
    t.apply([asc.StreamSegment(id=0, text="ask nut", is_final=True)])
    assert t.changed_after_final == [0]


def test_align_returns_every_word_in_order(client):
    t = client.align(JFK, JFK_TEXT, language="en")
    assert isinstance(t, asc.Transcription) and t.words
    assert normalize(" ".join(w.word for w in t.words)) == normalize(JFK_TEXT)
    assert all(a.start <= b.start for a, b in zip(t.words, t.words[1:], strict=False))


@pytest.fixture(scope="module")
def dialogue(tmp_path_factory) -> Path:
    """16 s of the two-speaker recording (both voices speak in it), to keep diarization quick."""
    out = tmp_path_factory.mktemp("dialogue") / "dialogue.wav"
    subprocess.run(["sox", str(TWO_SPEAKERS), str(out), "trim", "7", "16"], check=True)
    return out


def test_cli_transcribe_diarize_prints_speaker_turns(server, dialogue):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "audio_service_client.cli",
            "--url",
            server.base_url,
            "transcribe",
            str(dialogue),
            "--diarize",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    turns = [line for line in out.splitlines() if line.startswith("[")]
    speakers = {line.split("] ", 1)[1].split(":", 1)[0] for line in turns}
    assert len(turns) >= 2 and len(speakers) >= 2, out
    assert "?" not in speakers


def test_stream_with_speakers(client, dialogue):
    t = client.stream(dialogue, language="en", diarize=True).result()
    assert t.segments and all(s.speaker_id for s in t.segments.values())
    assert all(w.speaker_id for s in t.segments.values() for w in s.words)
