"""Diarization benchmark: DER through the batch endpoint, added time per audio minute, streaming-endpoint DER.

    .venv/bin/python bench/diarization.py        # a few minutes on 2 cores (6.5 min measured while others loaded the CPU)

Scores with pyannote.metrics (collar 0.25 s, overlap scored):
* two_speakers.wav (real conversation) against its RTTM, via POST /v1/audio/transcriptions diarize=true,
  hypothesis = speaker turns read off the returned words (one speaker's consecutive words, pauses
  up to 1 s bridged); also scored on the returned segments as they are;
* ami_dev00.wav (AMI far-field meeting excerpt, two speakers): speakers found, and missed / false alarm /
  confusion of the reference speech the returned words cover, and DER on non-overlapped regions;
* a file of espeak-ng voices (en-us, en+f3, de, en+m7) joined with known turn boundaries, same way;
* far-field-like meetings of three espeak-ng voice variants (reverb, noise, backchannels), same way
  (tests/meeting_mixtures.py);
* the offline diarizer's own turns, in-process (no ASR involved), and its time per audio minute;
* streaming: the file streamed (as fast as possible, language en) through the real WebSocket endpoint with
  diarize=true; hypothesis = the final segments as sent (each carries one speaker; the session splits a
  final segment where the tracker hears the speaker change).
Speed: the same requests with and without diarize=true; the difference per minute of audio.
Prints its figures and writes bench/results/diarization.json.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from _common import RESULTS, machine_info, save  # noqa: E402

from audio_service.audio.decode import decode_audio  # noqa: E402
from audio_service.diarization.offline import OfflineDiarizer, SpeakerBounds  # noqa: E402
from tests.audio_utils import DATA, TWO_SPEAKERS, load_16k  # noqa: E402
from tests.diarization_utils import (  # noqa: E402
    annotation,
    build_joined_voices,
    build_real_voices,
    der,
    reference_rttm,
    reference_two_speakers,
    segments_annotation,
    word_accuracy,
    word_turns_annotation,
)
from tests.meeting_mixtures import build_meeting  # noqa: E402
from tests.server import ServerProcess  # noqa: E402
from tests.stream_client import stream  # noqa: E402


def transcribe(srv: ServerProcess, path: Path, diarize: bool, runs: int = 2) -> tuple[float, dict]:
    """Fastest of ``runs`` identical requests (the machine is shared), and the response body."""
    best, body = float("inf"), {}
    for _ in range(runs):
        seconds, body = _transcribe_once(srv, path, diarize)
        best = min(best, seconds)
    return best, body


def _transcribe_once(srv: ServerProcess, path: Path, diarize: bool) -> tuple[float, dict]:
    data = {"response_format": "verbose_json", "timestamp_granularities[]": ["word", "segment"]}
    if diarize:
        data["diarize"] = "true"
    t0 = time.perf_counter()
    with open(path, "rb") as f:
        r = httpx.post(f"{srv.base_url}/v1/audio/transcriptions", files={"file": (path.name, f)}, data=data, timeout=600)
    r.raise_for_status()
    return time.perf_counter() - t0, r.json()


def streaming_der(srv: ServerProcess, path: Path, reference) -> dict:
    """Stream ``path`` through the real endpoint with diarize=true; score the final segments it sends."""
    r = asyncio.run(stream(srv.ws_url, load_16k(path), pace=0, params={"language": "en", "diarize": "true"}, timeout_s=600))
    segments = [s for _, s in sorted(r.segments.items()) if s["is_final"]]
    return {**der(reference, segments_annotation(segments, reference.uri)), "final_segments": len(segments)}


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-diar-"))
    joined, joined_ref = build_joined_voices(work)
    files = {
        "two_speakers": (TWO_SPEAKERS, reference_two_speakers()),
        "ami_dev00": (DATA / "ami_dev00.wav", reference_rttm("ami_dev00")),
        "real_voices": build_real_voices(work),
        "joined_voices": (joined, joined_ref),
        "far_field_3_voices": build_meeting(work, ["m_us", "f_gb", "m_sc"], "far_field_3_voices"),
    }
    results: dict = {"machine": machine_info(), "collar": 0.25}
    RESULTS.mkdir(parents=True, exist_ok=True)
    with ServerProcess(log_path=RESULTS / "diarization-server.log") as srv:
        transcribe(srv, TWO_SPEAKERS, diarize=True)  # warm-up: loads the diarization models once
        for name, (path, ref) in files.items():
            plain_s, _ = transcribe(srv, path, diarize=False)
            diar_s, body = transcribe(srv, path, diarize=True)
            minutes = body["duration"] / 60
            hyp = word_turns_annotation(body["words"], ref.uri)
            score = der(ref, hyp)
            covered = der(ref, hyp, uem=hyp.get_timeline().support())  # the speech the words cover
            non_overlapped = der(ref, hyp, skip_overlap=True)
            by_segments = der(ref, segments_annotation(body["segments"], ref.uri))
            streamed = streaming_der(srv, path, ref)
            results[name] = {
                "duration_s": body["duration"],
                "batch": score,
                "batch_words_covered": {**covered, "confusion_share": covered["confusion_s"] / max(covered["total_s"], 1e-9)},
                "batch_non_overlapped": non_overlapped,
                "word_speaker_accuracy": word_accuracy(ref, body["words"]),
                "batch_scored_on_segments": by_segments,
                "speakers_found": sorted({s["speaker_id"] for s in body["segments"]}),
                "streaming_endpoint": streamed,
                "transcribe_s_per_min": round(plain_s / minutes, 2),
                "diarize_added_s_per_min": round((diar_s - plain_s) / minutes, 2),
            }
            print(
                f"{name}: {len(results[name]['speakers_found'])} speakers (reference {len(ref.labels())}); of the speech the "
                f"words cover: confusion {covered['confusion_s'] / max(covered['total_s'], 1e-9):.3f}, missed "
                f"{covered['missed_s'] / max(covered['total_s'], 1e-9):.3f}, false alarm "
                f"{covered['false_alarm_s'] / max(covered['total_s'], 1e-9):.3f}; "
                f"non-overlapped DER {non_overlapped['der']:.3f}; word speaker accuracy {results[name]['word_speaker_accuracy']}"
            )
            print(
                f"{name}: batch DER {score['der']:.3f} (confusion {score['confusion_s']:.2f}s, missed {score['missed_s']:.2f}s, "
                f"false alarm {score['false_alarm_s']:.2f}s of {score['total_s']:.1f}s; {by_segments['der']:.3f} scored on "
                f"segments); streaming DER {streamed['der']:.3f}; "
                f"transcription {plain_s / minutes:.1f}s/min, diarization adds {(diar_s - plain_s) / minutes:.1f}s/min"
            )
    save("diarization", results)  # the endpoint figures are kept even if the in-process part fails
    # The diarizer alone, in-process: its own turns (overlap included) and its time, apart from ASR.
    diarizer = OfflineDiarizer()
    for name, (path, ref) in files.items():
        audio = decode_audio(str(path))
        diarizer(audio, SpeakerBounds())  # warm-up
        t0 = time.perf_counter()
        turns = diarizer(audio, SpeakerBounds())
        seconds = time.perf_counter() - t0
        score = der(ref, annotation(((t.start, t.end, t.speaker) for t in turns), ref.uri))
        results[name]["diarizer_turns"] = score
        results[name]["diarizer_s_per_min"] = round(seconds / (audio.duration / 60), 2)
        print(
            f"{name}: diarizer turns DER {score['der']:.3f} (confusion {score['confusion_s']:.2f}s); "
            f"diarizer alone {seconds / (audio.duration / 60):.1f}s per audio minute"
        )
    save("diarization", results)


if __name__ == "__main__":
    main()
