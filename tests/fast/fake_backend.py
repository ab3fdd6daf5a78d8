"""A decoding backend without a model, for the in-process test layer.

Text depends only on the audio: every half second of audible sound (RMS above a floor) on the
stream's or file's clock is one word named after its start (``w12`` starts at 6.0 s), so re-decodes
of the same audio agree, silence gives no words and an assertion can compute the text it expects.

A :class:`Gate` holds model calls "busy" until the test releases them, and counts the calls that
are waiting at it, so a test waits on that state (with a deadline) instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from audio_service.api.deps import DecodingBackend
from audio_service.pipeline.asr import AsrOptions
from audio_service.schema import SAMPLE_RATE, Audio, Segment, SpeechSpan, Transcript, Word
from audio_service.settings import Settings
from audio_service.whisper.rules import DecodeOptions
from audio_service.whisper.types import DecodedWord, DecodeRequest, DecodeResult, LoadedModel, ModelSpec, WindowPolicy

STEP_S = 0.5  # one word per half second of sound
FLOOR = 1e-3  # RMS below this is silence
UNLOADABLE = "fake:unloadable"  # a model source the fake refuses to load (ModelUnavailableError)


def word_times(samples: np.ndarray, offset: float) -> list[float]:
    """Start times (on the absolute clock) of the half seconds of ``samples`` that carry sound."""
    step = int(STEP_S * SAMPLE_RATE)
    first = int(np.ceil(round(offset / STEP_S, 6)))  # words sit on the absolute half-second grid
    starts = []
    k = first
    while True:
        a = int(round((k * STEP_S - offset) * SAMPLE_RATE))
        if a + step > len(samples):
            break
        chunk = samples[a : a + step]
        if chunk.size and float(np.sqrt(np.mean(chunk.astype(np.float64) ** 2))) > FLOOR:
            starts.append(k * STEP_S)
        k += 1
    return starts


def word_name(start: float) -> str:
    return f"w{round(start / STEP_S)}"


def expected_text(samples: np.ndarray, offset: float = 0.0) -> str:
    """The text the fake gives for ``samples`` (the test's oracle)."""
    return " ".join(word_name(t) for t in word_times(samples, offset))


def assert_heard(text: str, samples: np.ndarray, offset: float = 0.0, share: float = 0.7) -> None:
    """``text`` (a stream's) is words of ``samples`` in order, at least ``share`` of them: the stream's VAD
    leaves out the pauses that a file's half-second grid still counts as sound."""
    expected = expected_text(samples, offset).split()
    words = text.split()
    assert set(words) <= set(expected), (text, expected)
    assert words == sorted(set(words), key=expected.index), (text, expected)  # in order, none twice
    assert len(words) >= share * len(expected), (text, expected)


class Gate:
    """Open by default; closed, model calls wait at it until :meth:`open` (or the deadline)."""

    def __init__(self) -> None:
        self._open = threading.Event()
        self._open.set()
        self._cond = threading.Condition()
        self.waiting = 0  # calls held at the gate now
        self.passed = 0  # calls that went through

    def close(self) -> None:
        self._open.clear()

    def open(self) -> None:
        self._open.set()

    def wait(self, timeout_s: float = 60.0) -> None:
        with self._cond:
            self.waiting += 1
            self._cond.notify_all()
        try:
            if not self._open.wait(timeout_s):
                raise TimeoutError("the test never opened the gate")
        finally:
            with self._cond:
                self.waiting -= 1
                self.passed += 1
                self._cond.notify_all()

    def wait_for_waiting(self, n: int = 1, timeout_s: float = 10.0) -> None:
        """Until ``n`` calls are held at the gate."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self.waiting < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{self.waiting} call(s) at the gate, expected {n}")
                self._cond.wait(left)


@dataclass
class FakeBackend:
    """The three model calls of :class:`DecodingBackend`, fake, with a gate for batch and one for streams."""

    batch_gate: Gate = field(default_factory=Gate)
    stream_gate: Gate = field(default_factory=Gate)
    loads: list[str] = field(default_factory=list)  # model ids loaded, in order
    stream_calls: int = 0
    batch_options: list[AsrOptions] = field(default_factory=list)  # what each batch decode was asked
    stream_hotwords: list[str] = field(default_factory=list)  # each stream window's hotwords

    def load(self, settings: Settings, spec: ModelSpec, threads: int, workers: int) -> LoadedModel:
        from audio_service.errors import ModelUnavailableError

        if spec.source == UNLOADABLE:
            raise ModelUnavailableError(f"Model {spec.id!r} could not be loaded: fake", param="model")
        self.loads.append(spec.id)
        whisper = SimpleNamespace(model=SimpleNamespace(is_multilingual=not spec.id.endswith(".en")))
        return LoadedModel(spec, whisper, "cpu", "fake")  # type: ignore[arg-type]

    def transcribe(self, model, audio: Audio, spans: list[SpeechSpan], opts: AsrOptions, on_segment=None) -> Transcript:
        self.batch_gate.wait()
        self.batch_options.append(opts)
        segments = []
        for span in spans:
            piece = audio.slice(span.start, span.end)
            starts = word_times(piece.samples, span.start)
            if not starts:
                continue
            words = tuple(Word(t, t + STEP_S * 0.8, " " + word_name(t)) for t in starts)
            text = "".join(w.word for w in words)
            segments.append(Segment(len(segments), starts[0], words[-1].end, text, words=words if opts.word_timestamps else ()))
            if on_segment is not None:
                on_segment(words[-1].end, text)
        language = opts.language or opts.file_language or "en"
        return Transcript(opts.task, language, audio.duration, tuple(segments))

    def decode_windows(
        self, model, requests: list[DecodeRequest], window: WindowPolicy, options: DecodeOptions
    ) -> list[DecodeResult]:
        self.stream_gate.wait()
        self.stream_calls += 1
        out = []
        for r in requests:
            self.stream_hotwords.append(r.hotwords)
            starts = word_times(r.samples, r.offset)
            words = tuple(DecodedWord(" " + word_name(t), t, t + STEP_S * 0.8, 0.9, (round(t / STEP_S),)) for t in starts)
            text = "".join(w.word for w in words)
            out.append(DecodeResult(text, words, r.language or "en", 0.0 if words else 0.9, -0.2))
        return out

    def backend(self) -> DecodingBackend:
        return DecodingBackend(load=self.load, transcribe=self.transcribe, decode_windows=self.decode_windows)
