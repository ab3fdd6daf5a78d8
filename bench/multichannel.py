"""``multichannel=true`` on a stereo "call": the WER of each channel against its speaker's reference,
beside the WER of that speaker's recording transcribed alone (mono), and of the channels mixed down.

    .venv/bin/python bench/multichannel.py        # about a minute on 2 cores

Each call puts one real recording (``../shared/data/realspeech``) on the left channel and another on
the right, the second starting before the first ends (the two talk over each other for a few
seconds, as callers do), and is transcribed in-process by the batch pipeline
(``BatchService.run_channels``, the server's default model and decoder, language given). Mixed down
(the service without ``multichannel``), both speakers end up in one text: its WER is against the two
references joined in the order they start. Writes bench/results/multichannel.json and prints a table.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from _common import machine_info, save  # noqa: E402

from audio_service.models.registry import ModelRegistry  # noqa: E402
from audio_service.pipeline.batch import BatchJob, BatchService  # noqa: E402
from audio_service.settings import Settings  # noqa: E402
from tests.audio_utils import REALSPEECH, load_16k, realspeech_manifest, wer, write_wav  # noqa: E402

SR = 16000
# (left recording, right recording, seconds the right one starts before the left one ends)
CALLS = (
    ("en_librispeech_1089-134686-0000.wav", "en_librispeech_1995-1837-0001.wav", 3.0),
    ("en_librispeech_1272-128104-0000.wav", "en_fleurs_001.wav", 2.0),
)


def stereo_call(left: np.ndarray, right: np.ndarray, overlap_s: float) -> tuple[np.ndarray, float]:
    """Both recordings on their own channel, the right one starting ``overlap_s`` before the left ends;
    the samples (n, 2) and where the right one starts, seconds."""
    start = max(0, len(left) - int(overlap_s * SR))
    out = np.zeros((max(len(left), start + len(right)), 2), np.float32)
    out[: len(left), 0] = left
    out[start : start + len(right), 1] = right
    return out, start / SR


def main() -> None:
    settings = Settings()
    service = BatchService(settings, ModelRegistry(settings))
    job = service.validate(BatchJob(language="en", multichannel=True))
    rows = realspeech_manifest()
    work = Path(tempfile.mkdtemp(prefix="bench-multichannel-"))
    calls = []
    for left_name, right_name, overlap_s in CALLS:
        refs = [rows[left_name]["reference_text"], rows[right_name]["reference_text"]]
        sources = [REALSPEECH / left_name, REALSPEECH / right_name]
        samples, right_start = stereo_call(load_16k(sources[0]), load_16k(sources[1]), overlap_s)
        path = write_wav(work / f"{Path(left_name).stem}+{Path(right_name).stem}.wav", samples)
        t0 = time.perf_counter()
        transcript = service.run_channels(str(path), job, 2)
        seconds = time.perf_counter() - t0
        channel_text = [" ".join(s.text.strip() for s in transcript.segments if s.channel == c) for c in (0, 1)]
        mono_text = [service.run_sync(str(p), job).text for p in sources]
        mixed = service.run_sync(str(path), job).text
        call = {
            "left": left_name,
            "right": right_name,
            "duration_s": round(len(samples) / SR, 2),
            "overlap_s": overlap_s,
            "right_starts_s": round(right_start, 2),
            "seconds": round(seconds, 2),
            "channels": [
                {
                    "channel": c,
                    "source": [left_name, right_name][c],
                    "wer_multichannel": round(wer(refs[c], channel_text[c]), 4),
                    "wer_mono_source": round(wer(refs[c], mono_text[c]), 4),
                    "text": channel_text[c],
                }
                for c in (0, 1)
            ],
            "mixed_down_wer": round(wer(" ".join(refs), mixed), 4),
            "mixed_down_text": mixed,
            "segment_channels_in_time_order": [s.channel for s in transcript.segments],
        }
        calls.append(call)
    print(f"{'call':70s} {'ch':>2s} {'WER multichannel':>17s} {'WER mono source':>16s}")
    for call in calls:
        for ch in call["channels"]:
            name = f"{call['left']} | {call['right']}"
            print(f"{name:70s} {ch['channel']:>2d} {ch['wer_multichannel']:>17.4f} {ch['wer_mono_source']:>16.4f}")
        print(f"{'':70s} mixed down (no multichannel), both references: WER {call['mixed_down_wer']:.4f}")
    save("multichannel", {"machine": machine_info(), "model": job.model, "decoder": settings.batch.decoder, "calls": calls})


if __name__ == "__main__":
    main()
