"""Commit lag per word, this service beside WhisperLiveKit, from one run on one machine (issue 22).

    python bench/peers.py --levels 1,2 --wlk /tmp/wlk-venv/bin/whisperlivekit-server   # writes commit_lag.json
    python bench/peers.py --levels 1,2,4,8 --wlk ...                                     # a quiet machine

Both servers get the same audio (jfk three times with 1 s pauses, as ``bench/streaming.py``), the same
100 ms PCM16 frames at real-time pace from N concurrent clients, and the same packaged Whisper base model
(WhisperLiveKit: ``--backend faster-whisper --backend-policy localagreement --model_dir`` the directory
the service assembles). Commit lag is, per word of the final transcript, the wall time at which the word
was first sent committed minus the wall time the frame holding the word's end was sent:

- this service: the first message carrying the word with ``is_final`` (on the word or its segment), the
  word's end from its own timestamps (``commit_lags`` in tests/stream_client.py);
- WhisperLiveKit: the first message whose committed ``lines`` hold the word (its ``buffer_transcription``
  is the uncommitted tail). Its lines carry no word times, so each committed word takes the end time of
  the same word in the service's batch transcription of the audio (word timestamps), matched by a word
  alignment of the two transcripts; words that do not match are left out of the lag (they count in WER).

WhisperLiveKit runs from its own virtual environment (``pip install whisperlivekit==0.2.26`` there, not in
the project's), warmed up on the local jfk file so that nothing is downloaded.
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
import websockets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import machine_info  # noqa: E402
from bench.streaming import jfk_repeated, level, pct  # noqa: E402
from bench.streaming_report import table  # noqa: E402
from tests.audio_utils import JFK, float_to_pcm16, load_16k, normalize, wer, write_wav  # noqa: E402
from tests.server import ServerProcess, free_port, wait_until_ok  # noqa: E402
from tests.stream_client import StreamResult, sent_wall  # noqa: E402

SR = 16000
RESULTS = ROOT / "bench" / "results" / "commit_lag.json"
MODEL_DIR = Path.home() / ".cache" / "audio-service" / "whisper-base"


def reference_word_ends(srv: ServerProcess, audio: np.ndarray, workdir: Path) -> list[tuple[str, float]]:
    """(normalized word, end time) of the service's batch transcription with word timestamps."""
    path = write_wav(workdir / "audio.wav", audio)
    with open(path, "rb") as f:
        resp = httpx.post(
            f"{srv.base_url}/v1/audio/transcriptions",
            files={"file": ("audio.wav", f, "audio/wav")},
            data={"language": "en", "response_format": "verbose_json", "timestamp_granularities": "word"},
            timeout=600,
        )
    resp.raise_for_status()
    out = []
    for w in resp.json()["words"]:
        for piece in normalize(w["word"]).split():
            out.append((piece, float(w["end"])))
    return out


def committed_word_times(messages: list[tuple[float, dict]]) -> tuple[list[str], list[float]]:
    """WhisperLiveKit's final committed words and, for each, the wall time its position first held it.

    A message's committed words are its ``lines`` (their text, in order); the last message's lines are the
    final transcript, and a word is committed from the first message holding it at the same position."""
    seen: list[tuple[float, list[str]]] = []
    for t, msg in messages:
        if "lines" in msg:
            seen.append((t, normalize(" ".join(line.get("text", "") for line in msg["lines"])).split()))
    final = seen[-1][1] if seen else []
    times = [next(t for t, words in seen if len(words) > k and words[k] == w) for k, w in enumerate(final)]
    return final, times


def peer_commit_lags(r: StreamResult, ref: list[tuple[str, float]]) -> tuple[list[float], str]:
    """Per matched committed word: commit wall time minus the send time of the frame holding its reference end."""
    words, times = committed_word_times(r.messages)
    match = difflib.SequenceMatcher(a=words, b=[w for w, _ in ref], autojunk=False)
    lags = []
    for block in match.get_matching_blocks():
        for i in range(block.size):
            end = ref[block.b + i][1]
            lags.append(max(0.0, times[block.a + i] - sent_wall(r, end)))
    return lags, " ".join(words)


async def wlk_stream(url: str, audio: np.ndarray, frame_ms: int, timeout_s: float = 600) -> StreamResult:
    """One WhisperLiveKit client: PCM16 frames at real time, an empty frame at the end, read to ``ready_to_stop``."""
    result = StreamResult()
    frame = SR * frame_ms // 1000
    async with websockets.connect(url, max_size=None) as ws:
        result.t0 = time.perf_counter()

        async def send() -> None:
            for i in range(0, len(audio), frame):
                delay = result.t0 + i / SR - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                await ws.send(float_to_pcm16(audio[i : i + frame]))
                result.sent_audio.append((time.perf_counter() - result.t0, min(len(audio), i + frame) / SR))
            await ws.send(b"")  # WhisperLiveKit's end of stream

        sender = asyncio.create_task(send())
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    try:
                        msg = json.loads(await ws.recv())
                    except websockets.ConnectionClosed:
                        break
                    result.messages.append((time.perf_counter() - result.t0, msg))
                    if msg.get("type") == "ready_to_stop":
                        break
        finally:
            await sender
    return result


class WhisperLiveKit:
    """``whisperlivekit-server`` on a loopback port with the packaged base model; a context manager."""

    def __init__(self, binary: str, log: Path, warmup_wav: Path, extra: list[str]) -> None:
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}/asr?language=en"
        # the flags that shape the result (recorded); the rest only place it here
        self.flags = ["--backend", "faster-whisper", "--backend-policy", "localagreement", "--model_dir", str(MODEL_DIR)]
        self.flags += ["--pcm-input", "--lan", "en", *extra]
        self.cmd = [binary, *self.flags, "--warmup-file", str(warmup_wav), "--host", "127.0.0.1", "--port", str(self.port)]
        self.log = log
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> WhisperLiveKit:
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # the model is local: a hub call would only hang offline
        self.proc = subprocess.Popen(self.cmd, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT, env=env)
        try:
            wait_until_ok(self.proc, f"http://127.0.0.1:{self.port}/health", 300, interval=1.0)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"whisperlivekit-server {exc}: {self.log.read_text()[-2000:]}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def cpu_s(self) -> float:
        assert self.proc is not None
        p = psutil.Process(self.proc.pid)
        return sum(sum(q.cpu_times()[:2]) for q in [p, *p.children(recursive=True)])


def wlk_level(
    peer: WhisperLiveKit, audio: np.ndarray, reference: str, ref: list[tuple[str, float]], n: int, frame_ms: int
) -> dict:
    async def run() -> list[StreamResult]:
        async def one(i: int) -> StreamResult:
            await asyncio.sleep(0.05 * i)  # as bench/streaming.py's clients
            return await wlk_stream(peer.url, audio, frame_ms)

        return await asyncio.gather(*(one(i) for i in range(n)))

    cpu0 = peer.cpu_s()
    results = asyncio.run(run())
    cpu_s = peer.cpu_s() - cpu0
    lags, wers, unmatched = [], [], 0
    for r in results:
        lag, text = peer_commit_lags(r, ref)
        lags += lag
        unmatched += len(text.split()) - len(lag)
        wers.append(wer(reference, text))
    row = {
        "streams": n,
        "commit_p50": pct(lags, 50),
        "commit_p95": pct(lags, 95),
        "words_timed": len(lags),
        "words_unmatched": unmatched,
        "wer": round(float(np.mean(wers)), 4),
        "cpu_per_stream_audio_s": round(cpu_s / (n * len(audio) / SR), 3),
    }
    print(
        f"    N={n}: commit lag p50/p95 {row['commit_p50']}/{row['commit_p95']} s, WER {row['wer']}, "
        f"server CPU {row['cpu_per_stream_audio_s']} s per stream-audio-s",
        flush=True,
    )
    return row


WORD_COMMITS: dict[str, dict[str, object]] = {"streaming": {"commit_words": True}}  # words final while the speaker goes on
SEGMENT_FINALS: dict[str, dict[str, object]] = {"streaming": {"commit_words": False}}  # words final with their segment


def _peer_cell(peer: dict, i: int, what: str) -> str:
    """A peer's commit lag or WER at the service's i-th level (peers may run fewer levels)."""
    if i >= len(peer["levels"]):
        return "-"
    row = peer["levels"][i]
    return f"{row['commit_p50']} / {row['commit_p95']}" if what == "commit" else str(row["wer"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--levels", default="1,2,4,8", help="comma-separated concurrent stream counts")
    ap.add_argument("--frame-ms", type=int, default=100)
    ap.add_argument("--wlk", help="whisperlivekit-server executable (in its own venv); without it, this service only")
    ap.add_argument("--wlk-args", default="", help="more whisperlivekit-server flags, e.g. '--min-chunk-size 1'")
    ap.add_argument("--peer-levels", help="stream counts for the peers (default: --levels; WhisperLiveKit is slow)")
    ap.add_argument(
        "--segment-finals",
        action="store_true",
        help="also run this service with streaming.commit_words off (words final with their segment only)",
    )
    ap.add_argument("--out", default=RESULTS.name, help=f"results file name in bench/results (default {RESULTS.name})")
    args = ap.parse_args()
    levels = [int(n) for n in args.levels.split(",")]
    peer_levels = [int(n) for n in args.peer_levels.split(",")] if args.peer_levels else levels
    audio, reference = jfk_repeated(3, 1.0)
    load_before = os.getloadavg()
    t_start = time.perf_counter()
    print(f"concurrent real-time streams of jfk x3 (1 s pauses), {args.frame_ms} ms frames", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("  this service, streaming.commit_words=true:", flush=True)
        with ServerProcess(log_path=work / "service.log", quotas={"max_streams_per_key": 1000}, **WORD_COMMITS) as srv:
            ref = reference_word_ends(srv, audio, work)
            service = [level(srv, audio, reference, n, args.frame_ms) for n in levels]
        segment_finals = []
        if args.segment_finals:
            print("  this service, streaming.commit_words=false:", flush=True)
            quotas = {"max_streams_per_key": 1000}
            with ServerProcess(log_path=work / "segment.log", quotas=quotas, **SEGMENT_FINALS) as srv:
                segment_finals = [level(srv, audio, reference, n, args.frame_ms) for n in levels]
        peer: dict = {}
        if args.wlk:
            query = "import importlib.metadata as m; print(m.version('whisperlivekit'))"
            version = subprocess.run(
                [str(Path(args.wlk).parent / "python"), "-c", query],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            print(f"  WhisperLiveKit {version}:", flush=True)
            warmup = write_wav(work / "jfk.wav", load_16k(JFK))  # its warmup would download jfk.wav otherwise
            wlk = WhisperLiveKit(args.wlk, work / "wlk.log", warmup, args.wlk_args.split())
            with wlk:
                rows = [wlk_level(wlk, audio, reference, ref, n, args.frame_ms) for n in peer_levels]
            peer = {"whisperlivekit": {"version": version, "command": " ".join(wlk.flags), "levels": rows}}
    results = {
        "machine": {**machine_info(), "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "frame_ms": args.frame_ms,
        "audio": "jfk x3 with 1 s pauses",
        "service": {"settings": WORD_COMMITS, "levels": service},
        **({"segment_finals": {"settings": SEGMENT_FINALS, "levels": segment_finals}} if segment_finals else {}),
        "peers": peer,
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    out = RESULTS.parent / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    table(
        "Commit lag per word (seconds) and WER",
        ["N", "this service p50 / p95", "WER", *[f"{name} p50 / p95" for name in peer], *[f"{name} WER" for name in peer]],
        [
            [
                row["streams"],
                f"{row['commit_p50']} / {row['commit_p95']}",
                row["wer"],
                *[_peer_cell(p, i, "commit") for p in peer.values()],
                *[_peer_cell(p, i, "wer") for p in peer.values()],
            ]
            for i, row in enumerate(service)
        ],
    )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
