"""The batch pipeline against the engine it wraps, on real recordings.

The service must never be less accurate than faster-whisper run directly with the same model: no
phrase dropped at a window join, no sentence emitted twice, every segment in the language spoken.
In-process (the real model and real audio, no HTTP): what is checked is the pipeline's text.
``bench/accuracy.py`` measures the same over the whole shared set and the long files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audio_service.schema import Segment, Transcript
from bench.accuracy import Span, join, repeated, score
from tests.audio_utils import DATA, JFK, JFK_TEXT, REALSPEECH, load_16k, realspeech_manifest, write_wav

pytestmark = pytest.mark.slow
PAUSE_S = 0.6


def _wer(reference: str, hypothesis: str, language: str) -> float:
    return score(reference, hypothesis, language).wer  # the benchmark's normalisation and scoring


def _joined(tmp: Path, name: str, files: list[str]) -> tuple[Path, str, list[tuple[float, float, str]]]:
    """Recordings joined with short pauses: the file, its reference and each clip's (start, end, language)."""
    rows = [realspeech_manifest()[f] for f in files]
    audio, reference, spans = join(
        [(load_16k(REALSPEECH / f), r["reference_text"], r["language"]) for f, r in zip(files, rows)], PAUSE_S
    )
    return write_wav(tmp / name, audio), reference, [(c.start, c.end, c.language) for c in spans]


@pytest.fixture(scope="module")
def engine():
    """The service's batch pipeline and the shared faster-whisper model it wraps."""
    from audio_service.models.registry import ModelRegistry
    from audio_service.pipeline.batch import BatchJob, BatchService
    from audio_service.settings import Settings

    settings = Settings()
    registry = ModelRegistry(settings)
    service = BatchService(settings, registry)
    model_id = registry.resolve(None).id

    def service_run(path: Path, **job) -> Transcript:
        return service.run_sync(str(path), BatchJob(model=model_id, **job))

    def engine_text(path: Path) -> str:
        segments, _ = registry.get(model_id).whisper.transcribe(str(path), beam_size=5, vad_filter=True)
        return " ".join(s.text.strip() for s in segments)

    yield service_run, engine_text
    service.shutdown()


def _repeats(segments: tuple[Segment, ...]) -> int:
    """Segments whose text another segment says again over the same time (the benchmark's count)."""
    return repeated([Span(s.start, s.end, s.language, s.text) for s in segments])


def test_a_joined_reading_loses_no_phrase_at_window_joins(engine, tmp_path):
    """Several readers joined with 0.6 s pauses: windows are full and end mid-reading (the case where
    the batch pipeline lost "mutton pieces to be ladled out ..." and "built around it")."""
    service_run, engine_text = engine
    files = [f for f in realspeech_manifest() if f.startswith("en_")]
    path, reference, _ = _joined(tmp_path, "reading.wav", files)
    got = service_run(path, timed_segments=True)
    assert _wer(reference, got.text, "en") <= _wer(reference, engine_text(path), "en") + 0.02, got.text
    assert not _repeats(got.segments)
    for phrase in ("mutton pieces to be ladled out", "built around it", "in the middle of a sentence"):
        assert phrase in got.text.lower(), (phrase, got.text)


def test_a_sentence_said_three_times_is_transcribed_three_times_never_more(engine, tmp_path):
    """jfk three times with pauses: a window that tempts Whisper into a loop. (Whisper's temperature
    fallback samples, so the text may differ between runs: no exact comparison with the engine here.)"""
    service_run, _ = engine
    jfk, pause = load_16k(JFK), np.zeros(4 * 16000, np.float32)
    path = write_wav(tmp_path / "jfk_x3.wav", np.concatenate([jfk, pause] * 3))
    got = service_run(path, timed_segments=True)
    assert _wer(" ".join([JFK_TEXT] * 3), got.text, "en") <= 0.1, got.text
    assert got.text.lower().count("fellow americans") == 3, got.text
    assert not _repeats(got.segments), got.segments


def test_a_meeting_excerpt_keeps_every_word_the_engine_hears(engine):
    """A real meeting (backchannels, overlaps): at least the engine's words, nothing twice."""
    service_run, engine_text = engine
    path = DATA / "ami_dev00.wav"
    got = service_run(path, timed_segments=True)
    assert len(got.text.split()) >= len(engine_text(path).split())
    assert not _repeats(got.segments)


def test_code_switched_audio_keeps_each_language(engine, tmp_path):
    """English readers then German ones, language unset: each segment in the language spoken, the
    German transcribed as German (not translated into English)."""
    service_run, _ = engine
    english = ["en_librispeech_1272-128104-0000.wav", "en_librispeech_1995-1837-0001.wav"]
    german = ["de_fleurs_001.wav", "de_fleurs_002.wav"]
    path, _, clips = _joined(tmp_path, "en_de.wav", english + german)
    got = service_run(path, timed_segments=True)
    for seg in got.segments:
        clip = max(clips, key=lambda c: min(seg.end, c[1]) - max(seg.start, c[0]))
        assert seg.language == clip[2], (seg.start, seg.end, seg.language, seg.text)
    german_text = " ".join(s.text for s in got.segments if s.language == "de")
    german_reference = " ".join(realspeech_manifest()[f]["reference_text"] for f in german)
    assert _wer(german_reference, german_text, "de") <= 0.25, german_text
    assert got.language == "de"  # the language with the most speech


@pytest.mark.parametrize("name", ["de_fleurs_001.wav", "fr_fleurs_005.wav", "es_fleurs_002.wav"])
def test_the_language_of_a_real_recording_is_detected(engine, name):
    service_run, _ = engine
    got = service_run(REALSPEECH / name)
    assert got.language == realspeech_manifest()[name]["language"]


def test_a_stream_keeps_each_language_of_code_switched_speech(server, tmp_path):
    """The streaming endpoint, language unset: final segments in the language spoken, with its code."""
    import asyncio

    from tests.stream_client import stream

    english, german = "en_librispeech_1995-1837-0001.wav", "de_fleurs_002.wav"
    path, _, clips = _joined(tmp_path, "en_de_stream.wav", [english, german])
    result = asyncio.run(stream(server.ws_url, load_16k(path), frame_ms=100, pace=4.0))
    assert result.all_final and not result.errors
    finals = [s for _, s in sorted(result.segments.items()) if s["text"].strip()]
    for seg in finals:
        clip = max(clips, key=lambda c: min(seg["end"], c[1]) - max(seg["start"], c[0]))
        assert seg["language"] == clip[2], seg
    german_text = " ".join(s["text"] for s in finals if s["language"] == "de")
    assert _wer(realspeech_manifest()[german]["reference_text"], german_text, "de") <= 0.25, german_text


def test_the_batched_decoder_option_transcribes_real_speech(tmp_path):
    """``batch.decoder=batched`` (faster-whisper's batched pipeline over our packed windows)."""
    from audio_service.models.registry import ModelRegistry
    from audio_service.pipeline.batch import BatchJob, BatchService
    from audio_service.settings import Settings

    settings = Settings(batch={"decoder": "batched"})
    registry = ModelRegistry(settings)
    service = BatchService(settings, registry)
    files = ["en_librispeech_1272-128104-0000.wav", "en_librispeech_1995-1837-0001.wav"]
    path, reference, _ = _joined(tmp_path, "two_readers.wav", files)
    try:
        got = service.run_sync(str(path), BatchJob(model=registry.resolve(None).id, timed_segments=True))
    finally:
        service.shutdown()
    assert _wer(reference, got.text, "en") <= 0.05, got.text
    assert got.segments and not _repeats(got.segments)
