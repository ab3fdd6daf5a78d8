"""OpenAI Realtime transcription sessions beside the streaming protocol, on the same server and audio.

    python bench/realtime.py            # jfk and the realspeech recordings (about 11 minutes on 2 cores)
    python bench/realtime.py --quick    # jfk only

Starts the real server once (its defaults) and, one session at a time:

- accuracy: each clip (jfk and every ``realspeech`` recording, in its language) sent as fast as the server
  takes it, through the streaming protocol (final text after the ``final`` checkpoint) and through the
  ``openai`` package's Realtime client at 24 kHz (the ``completed`` transcripts, with server VAD, and with
  ``turn_detection: null`` and one commit at the end), and at 16 kHz (the server's extension: the same
  samples as the streaming protocol, no resampling); WER of each against the reference. The streaming
  protocol also gets the 16 kHz samples the server derives from the 24 kHz audio (the server's own
  resampler run on the very chunks the Realtime client sends): at 24 kHz the two endpoints are compared
  on the same samples (``*_same_audio``) beside the original 16 kHz audio (``*_original_audio``), since
  the 16k -> 24k -> 16k round trip changes the samples slightly (its SNR is in ``resampling``) and
  Whisper's borderline decodes can flip on that alone;
- latency (and WER again), at real-time pace on jfk and the English recordings: the realtime commit latency (wall time from
  appending the clip's last audio and committing to its ``completed`` event, turn detection null), the
  streaming protocol's latency from its last frame and ``final`` checkpoint to the checkpoint's answer,
  and per item / per segment with server VAD: from sending the end of the item's speech to its ``completed``
  event, beside the streaming protocol's final latency (sending the end of a segment's speech to the patch
  marking it final).

Writes ``bench/results/realtime.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import datetime
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audio_service.audio.decode import pcm16_to_float  # noqa: E402
from bench._common import machine_info  # noqa: E402
from tests.audio_utils import JFK, JFK_TEXT, REALSPEECH, float_to_pcm16, load_16k, realspeech_manifest, wer  # noqa: E402
from tests.realtime_client import RATE, append_event, at_24k, configure, connect, server_16k  # noqa: E402
from tests.server import ServerProcess  # noqa: E402
from tests.stream_client import stream  # noqa: E402

SR = 16000
CHUNK_S = 0.1
SERVER_VAD = {"type": "server_vad"}  # the server's streaming VAD settings: the same segmentation as the streaming protocol
RESULTS = ROOT / "bench" / "results" / "realtime.json"


def clips(quick: bool) -> list[dict[str, Any]]:
    out = [{"name": "jfk", "language": "en", "samples": load_16k(JFK), "text": JFK_TEXT}]
    if not quick:
        for name, row in realspeech_manifest().items():
            out.append(
                {"name": name, "language": row["language"], "samples": load_16k(REALSPEECH / name), "text": row["reference_text"]}
            )
    return out


def round_trip(samples: np.ndarray, derived: np.ndarray) -> dict[str, float]:
    """How much 16k -> 24k -> 16k changes the samples: SNR over the whole band and below 7 kHz (dB), beside
    the SNR of PCM16 itself (the clip quantized as the streaming protocol sends it), the floor of any path."""
    from scipy.signal import butter, sosfiltfilt

    n = min(len(samples), len(derived))
    a, err = samples[:n].astype(np.float64), derived[:n].astype(np.float64) - samples[:n]
    low = butter(8, 7000, fs=SR, output="sos")

    def snr(sig: np.ndarray, e: np.ndarray) -> float:
        return round(float(10 * np.log10(np.sum(sig**2) / max(np.sum(e**2), 1e-20))), 1)

    return {
        "length_difference": len(derived) - len(samples),
        "snr_db": snr(a, err),
        "snr_below_7khz_db": snr(sosfiltfilt(low, a), sosfiltfilt(low, err)),
        "snr_pcm16_db": snr(a, pcm16_to_float(float_to_pcm16(samples[:n])) - a),
    }


async def realtime(
    srv: ServerProcess, samples: np.ndarray, language: str, turn: dict | None, pace: float, rate: int = RATE
) -> tuple[str, float, list[float]]:
    """One Realtime session over ``samples`` at ``pace`` (0: as fast as possible), then a
    commit. -> the completed transcripts joined, the commit latency (s), and the latency of each item
    from sending the end of its speech to its ``completed``."""
    # the commit follows the clip's last audio at once: the utterance ends with the clip, as when a client
    # commits on a push-to-talk release (no trailing silence for a VAD to wait out)
    audio = at_24k(samples) if rate == RATE else samples
    step = int(CHUNK_S * rate)
    ends: list[float] = []  # audio seconds sent after each append...
    times: list[float] = []  # ...and when
    completed: list[tuple[float, Any]] = []
    async with connect(srv) as conn:
        await configure(conn, language, turn, rate)
        stopped: dict[str, float] = {}

        async def receive() -> None:
            async for event in conn:
                if event.type == "error":
                    raise RuntimeError(event.error)
                if event.type == "input_audio_buffer.speech_stopped":
                    stopped[event.item_id] = event.audio_end_ms / 1000
                elif event.type == "conversation.item.input_audio_transcription.completed":
                    completed.append((time.perf_counter(), event))
                    if turn is None:
                        return  # the commit's one item
                elif event.type == "input_audio_buffer.cleared":
                    return

        receiver = asyncio.create_task(receive())
        t0 = time.perf_counter()
        for i in range(0, len(audio), step):
            if pace > 0:
                await asyncio.sleep(max(0.0, t0 + i / rate / pace - time.perf_counter()))
            await conn.input_audio_buffer.append(audio=append_event(audio[i : i + step]))
            ends.append(min(len(audio), i + step) / rate)
            times.append(time.perf_counter())
        commit_at = time.perf_counter()
        await conn.input_audio_buffer.commit()  # with server VAD: ends the item still open, if any
        if turn is not None:
            # the clear is answered once every item before it is completed: the end of the session's items
            await conn.input_audio_buffer.clear()
        await asyncio.wait_for(receiver, 120)
    text = " ".join(e.transcript for _, e in completed if e.transcript)
    commit_latency = completed[-1][0] - commit_at
    per_item = []
    for t, e in completed:
        end = stopped.get(e.item_id)
        if end is not None:
            sent = times[min(len(times) - 1, bisect.bisect_left(ends, end - 1e-6))]
            per_item.append(max(0.0, t - sent))
    return text, commit_latency, per_item


def streaming(srv: ServerProcess, samples: np.ndarray, language: str, pace: float) -> tuple[str, float, list[float]]:
    """The streaming protocol on the same audio -> final text, the final checkpoint's latency after the last
    frame, and each segment's final latency (end of its speech sent -> the patch marking it final)."""
    r = asyncio.run(stream(srv.ws_url, samples, frame_ms=int(CHUNK_S * 1000), pace=pace, params={"language": language}))
    last_frame = r.sent_audio[-1][0]
    final_at = next(t for t, m in r.messages if m.get("checkpoint_id") == "final")
    sent_t, sent_a = [t for t, _ in r.sent_audio], [a for _, a in r.sent_audio]
    per_segment = []
    for t, m in r.messages:
        for seg in m.get("segments", ()):
            if seg["is_final"] and seg["text"].strip():
                i = min(len(sent_a) - 1, bisect.bisect_left(sent_a, seg["end"] - 1e-6))
                per_segment.append(max(0.0, t - sent_t[i]))
    return r.text, final_at - last_frame, per_segment


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="jfk only")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    with ServerProcess() as srv:
        accuracy = []
        for c in clips(args.quick):
            ref = c["text"]
            s_text, _, _ = streaming(srv, c["samples"], c["language"], pace=0)
            v_text, _, _ = asyncio.run(realtime(srv, c["samples"], c["language"], SERVER_VAD, pace=0))
            m_text, _, _ = asyncio.run(realtime(srv, c["samples"], c["language"], None, pace=0))
            k_text, _, _ = asyncio.run(realtime(srv, c["samples"], c["language"], SERVER_VAD, pace=0, rate=SR))
            derived = server_16k(at_24k(c["samples"]), CHUNK_S)
            d_text, _, _ = streaming(srv, derived, c["language"], pace=0)
            w_s, w_v, w_m, w_d = (round(wer(ref, t), 4) for t in (s_text, v_text, m_text, d_text))
            row = {
                "clip": c["name"],
                "language": c["language"],
                "seconds": round(len(c["samples"]) / SR, 2),
                "wer_streaming": w_s,
                "wer_streaming_server_16k": w_d,  # the streaming protocol on the samples the server derives at 24 kHz
                "wer_realtime_server_vad": w_v,
                "wer_realtime_commit": w_m,
                "wer_realtime_16k": round(wer(ref, k_text), 4),
                # the realtime session at 24 kHz (server VAD, and commit) against the streaming protocol:
                # on the same samples, and on the original 16 kHz audio
                "diff_same_audio": round(max(abs(w_v - w_d), abs(w_m - w_d)), 4),
                "same_text_same_audio": v_text.strip() == d_text.strip() and m_text.strip() == d_text.strip(),
                "diff_original_audio": round(max(abs(w_v - w_s), abs(w_m - w_s)), 4),
                "resampling": round_trip(c["samples"], derived),
            }
            accuracy.append(row)
            print(json.dumps(row))
        latency: dict[str, list[float]] = {"commit": [], "final_checkpoint": [], "item_server_vad": [], "segment_final": []}
        paced = []
        for c in [c for c in clips(args.quick) if c["language"] == "en"]:
            s_text, final_lat, seg_lat = streaming(srv, c["samples"], "en", pace=1.0)
            v_text, _, item_lat = asyncio.run(realtime(srv, c["samples"], "en", SERVER_VAD, pace=1.0))
            m_text, commit_lat, _ = asyncio.run(realtime(srv, c["samples"], "en", None, pace=1.0))
            paced.append(
                {
                    "clip": c["name"],
                    "wer_streaming": round(wer(c["text"], s_text), 4),
                    "wer_realtime_server_vad": round(wer(c["text"], v_text), 4),
                    "wer_realtime_commit": round(wer(c["text"], m_text), 4),
                }
            )
            latency["final_checkpoint"].append(final_lat)
            latency["commit"].append(commit_lat)
            latency["segment_final"] += seg_lat
            latency["item_server_vad"] += item_lat
            print(c["name"], f"commit {commit_lat:.2f} s, final checkpoint {final_lat:.2f} s")
    summary = {k: {"n": len(v), "p50_s": pct(v, 50), "p95_s": pct(v, 95), "max_s": pct(v, 100)} for k, v in latency.items()}
    data = {
        "date": datetime.date.today().isoformat(),
        "machine": machine_info(),
        "quick": args.quick,
        "accuracy": accuracy,
        "accuracy_real_time": paced,
        "latency": summary,
    }
    for k, v in summary.items():
        print(f"{k:18s} n={v['n']:3d} p50 {v['p50_s']} s  p95 {v['p95_s']} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
