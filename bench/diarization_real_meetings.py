"""Speaker count and DER of the offline diarizer, in-process, on real recordings.

    PYTHONPATH=. nice -n 5 .venv/bin/python bench/diarization_real_meetings.py [--seeds 0 1 2] [--out FILE]

Files: ami_dev00.wav and two_speakers.wav (their RTTMs), and meetings built by tests/real_meetings.py from
the shared read-speech recordings, 2-5 readers, each with overlaps and backchannels. The diarizer is the
server's default (``DiarizerRegistry(Settings()).get(None)``), no speaker bounds, its turns scored as they
are (no ASR). pyannote.metrics DER, collar 0.25 s, overlap scored (tests/diarization_utils.der); missed,
false alarm and confusion as shares of the reference speech.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audio_service.diarization.offline import DiarizerRegistry, SpeakerBounds  # noqa: E402
from audio_service.schema import Audio  # noqa: E402
from audio_service.settings import Settings  # noqa: E402
from bench._common import machine_info  # noqa: E402
from tests.audio_utils import DATA, load_16k  # noqa: E402
from tests.diarization_utils import annotation, der, reference_rttm  # noqa: E402
from tests.real_meetings import build_real_meeting  # noqa: E402


def score(diarizer, samples, reference) -> dict:
    t0 = time.perf_counter()
    turns = diarizer(Audio(samples), SpeakerBounds(None, None))
    seconds = time.perf_counter() - t0
    hyp = annotation(((t.start, t.end, t.speaker) for t in turns), reference.uri)
    d = der(reference, hyp)
    total = d["total_s"] or 1.0
    return {
        "file": reference.uri,
        "true": len(reference.labels()),
        "found": len(hyp.labels()),
        "der": round(d["der"], 3),
        "confusion": round(d["confusion_s"] / total, 3),
        "missed": round(d["missed_s"] / total, 3),
        "false_alarm": round(d["false_alarm_s"] / total, 3),
        "audio_s": round(len(samples) / 16000, 1),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--speakers", type=int, nargs="+", default=[2, 3, 4, 5])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    diarizer = DiarizerRegistry(Settings()).get(None)
    files = [(load_16k(DATA / f"{n}.wav"), reference_rttm(n)) for n in ("ami_dev00", "two_speakers")]
    files += [build_real_meeting(n, seed) for n in args.speakers for seed in args.seeds]
    rows = []
    print(f"{'file':34} true found   DER  conf  miss    FA  audio  time")
    for samples, reference in files:
        r = score(diarizer, samples, reference)
        rows.append(r)
        print(
            f"{r['file']:34} {r['true']:4} {r['found']:5} {r['der']:5.3f} {r['confusion']:5.3f} {r['missed']:5.3f}"
            f" {r['false_alarm']:5.3f} {r['audio_s']:6.1f} {r['seconds']:5.1f}",
            flush=True,
        )
    ok = sum(r["true"] == r["found"] and r["confusion"] <= 0.15 for r in rows)
    print(f"count right and confusion <= 0.15: {ok}/{len(rows)}")
    if args.out:
        result = {"machine": machine_info(), "collar_s": 0.25, "skip_overlap": False, "meetings": rows}
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
