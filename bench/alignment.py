"""Word-onset error of the default aligner (Whisper cross-attention) on words with known onsets.

    .venv/bin/python bench/alignment.py        # about a minute on 2 cores

Builds a file of single words spoken by espeak-ng (two voices), each trimmed to its audible extent
and joined with known pauses, so every word's true onset is known. Then:
* forced alignment of the known text (what POST /v1/audio/alignments runs);
* word timestamps of a plain transcription (what timestamp_granularities=word returns),
and reports median / p90 / max onset error. Writes bench/results/alignment.json.
"""

from __future__ import annotations

import difflib
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from _common import save  # noqa: E402

from audio_service.audio.decode import decode_audio  # noqa: E402
from audio_service.models.registry import ModelRegistry  # noqa: E402
from audio_service.pipeline.batch import BatchJob, BatchService  # noqa: E402
from audio_service.settings import Settings  # noqa: E402
from tests.audio_utils import espeak, load_16k, normalize, write_wav  # noqa: E402

WORDS = (
    "river window yellow garden morning picture number orange silver doctor "
    "table mountain pencil summer rabbit castle engine market planet button "
    "forest kitchen letter monkey island winter basket dragon pocket candle"
).split()
VOICES = ("en-us", "en+f3")


def build(directory: Path) -> tuple[Path, list[float]]:
    """The joined-words file and each word's true onset (seconds)."""
    rng = random.Random(7)
    pieces, onsets, t = [np.zeros(8000, np.float32)], [], 0.5
    for i, word in enumerate(WORDS):
        clip = load_16k(espeak(word, directory / f"w{i}.wav", VOICES[i % 2], speed=150))
        loud = np.nonzero(np.abs(clip) > 0.01)[0]
        clip = clip[loud[0] : loud[-1] + 1]
        gap = rng.uniform(0.25, 0.9)
        onsets.append(t)
        pieces += [clip, np.zeros(int(gap * 16000), np.float32)]
        t += (len(clip) + int(gap * 16000)) / 16000
    return write_wav(directory / "words.wav", np.concatenate(pieces)), onsets


def errors(words, onsets: list[float]) -> dict:
    """Onset errors of the words that match the spoken ones (a mis-recognised word is skipped)."""
    got = [normalize(w.word) for w in words]
    matcher = difflib.SequenceMatcher(a=WORDS, b=got, autojunk=False)
    pairs = [(onsets[b.a + k], words[b.b + k].start) for b in matcher.get_matching_blocks() for k in range(b.size)]
    e = np.abs(np.array([p[1] - p[0] for p in pairs])) * 1000
    return {
        "words": len(e),
        "of": len(WORDS),
        "median_ms": round(float(np.median(e)), 1),
        "p90_ms": round(float(np.percentile(e, 90)), 1),
        "max_ms": round(float(e.max()), 1),
    }


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-align-"))
    path, onsets = build(work)
    settings = Settings()
    registry = ModelRegistry(settings)
    service = BatchService(settings, registry)
    model = registry.get(None)
    audio = decode_audio(str(path))
    aligner = service.aligners.resolve(None)
    t0 = time.perf_counter()
    forced = service.aligners.align_text(aligner, model, audio, " ".join(WORDS), "en")
    align_s = time.perf_counter() - t0
    transcribed = service.run_sync(str(path), service.validate(BatchJob(word_timestamps=True, language="en")))
    results = {
        "audio_s": round(audio.duration, 1),
        "aligner": aligner,
        "forced_alignment": {**errors(list(forced.words), onsets), "seconds": round(align_s, 2)},
        "transcription_word_timestamps": errors(list(transcribed.words), onsets),
    }
    for name in ("forced_alignment", "transcription_word_timestamps"):
        print(f"{name}: {results[name]}")
    save("alignment", results)


if __name__ == "__main__":
    main()
