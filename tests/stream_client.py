"""A real WebSocket client for the streaming endpoint, shared by tests and ``bench/streaming.py``.

Streams float32 16 kHz audio as PCM16LE frames at a chosen pace, records every server message with
its arrival time, merges segments by id the way real clients do, and checks that no segment changes
after it was sent final.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import websockets

from tests.audio_utils import float_to_pcm16

PATH = "/v1/audio/transcriptions/streaming"
SR = 16000


@dataclass
class StreamResult:
    t0: float = 0.0  # wall clock when the first frame was sent
    pace: float = 1.0  # audio seconds per wall second (0 = as fast as possible)
    messages: list[tuple[float, dict]] = field(default_factory=list)  # (seconds since t0, message)
    sent_audio: list[tuple[float, float]] = field(default_factory=list)  # (seconds since t0, audio seconds sent)
    segments: dict[int, dict] = field(default_factory=dict)
    first_seen: dict[int, float] = field(default_factory=dict)
    final_changed: list[str] = field(default_factory=list)  # violations: a final segment or word re-sent differently
    committed: dict[tuple[int, int], dict] = field(default_factory=dict)  # (segment id, position) -> the word sent final
    checkpoints: list[Any] = field(default_factory=list)
    traces: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    close_code: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)  # the handshake's accept headers

    @property
    def text(self) -> str:
        return " ".join(s["text"].strip() for _, s in sorted(self.segments.items()) if s["text"].strip())

    @property
    def all_final(self) -> bool:
        return all(s["is_final"] for s in self.segments.values())

    def audio_sent_at(self, t: float) -> float:
        """Audio seconds sent by wall time ``t`` (seconds since t0)."""
        sent = 0.0
        for ts, a in self.sent_audio:
            if ts > t:
                break
            sent = a
        return sent

    def merge(self, t: float, msg: dict) -> None:
        self.messages.append((t, msg))
        if "segments" in msg:
            for seg in msg["segments"]:
                old = self.segments.get(seg["id"])
                if old is not None and old["is_final"]:
                    self.final_changed.append(f"segment {seg['id']} re-sent after final: {old['text']!r} -> {seg['text']!r}")
                self._check_committed(seg)
                self.segments[seg["id"]] = seg
        elif "checkpoint_id" in msg:
            self.checkpoints.append(msg["checkpoint_id"])
        elif msg.get("object") == "stt.output.trace":
            self.traces.append(msg)
        elif "error" in msg:
            self.errors.append(msg["error"])

    def _check_committed(self, seg: dict) -> None:
        """Words sent with ``is_final`` keep their place, text and times in every later message of their segment."""
        words = seg.get("words", [])
        for (sid, k), w in self.committed.items():
            if sid == seg["id"] and (k >= len(words) or words[k] != w):
                now = words[k] if k < len(words) else None
                self.final_changed.append(f"segment {sid} word {k} changed after final: {w} -> {now}")
        for k, w in enumerate(words):
            if w.get("is_final"):
                self.committed.setdefault((seg["id"], k), w)


def url_for(ws_base: str, **params: Any) -> str:
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    return f"{ws_base}{PATH}" + (f"?{query}" if query else "")


async def stream(
    ws_base: str,
    samples: np.ndarray,
    *,
    frame_ms: int = 50,
    pace: float = 1.0,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    trace_every_s: float | None = None,
    checkpoints_at: tuple[float, ...] = (),
    final: bool = True,
    timeout_s: float = 120.0,
) -> StreamResult:
    """Stream ``samples`` and wait for the ``final`` checkpoint; return everything received."""
    result = StreamResult(pace=pace)
    frame = SR * frame_ms // 1000
    async with websockets.connect(url_for(ws_base, **(params or {})), additional_headers=headers, max_size=None) as ws:
        result.t0 = time.perf_counter()
        result.response_headers = dict(ws.response.headers)

        async def send() -> None:
            next_trace = trace_every_s
            pending_cps = list(checkpoints_at)
            for i in range(0, len(samples), frame):
                audio_t = i / SR
                if pace > 0:
                    delay = result.t0 + audio_t / pace - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                await ws.send(float_to_pcm16(samples[i : i + frame]))
                sent = min(len(samples), i + frame) / SR
                result.sent_audio.append((time.perf_counter() - result.t0, sent))
                if next_trace is not None and sent >= next_trace:
                    await ws.send(
                        json.dumps({"event_id": f"e{sent:.2f}", "object": "stt.input.trace", "trace_id": f"t{sent:.2f}"})
                    )
                    next_trace += trace_every_s
                while pending_cps and sent >= pending_cps[0]:
                    await ws.send(json.dumps({"checkpoint_id": f"cp{pending_cps.pop(0)}"}))
                if pace == 0 and i % (frame * 20) == 0:
                    await asyncio.sleep(0)  # let the receiver run
            if final:
                await ws.send(json.dumps({"checkpoint_id": "final"}))

        sender = asyncio.create_task(send())
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    try:
                        raw = await ws.recv()
                    except websockets.ConnectionClosed:
                        break  # after an error message the server closes with its code
                    msg = json.loads(raw)
                    result.merge(time.perf_counter() - result.t0, msg)
                    if msg.get("checkpoint_id") == "final":
                        await ws.close()
                        break
        finally:
            sender.cancel()
            with contextlib.suppress(BaseException):
                await sender
        result.close_code = ws.close_code
    return result


async def expect_close(ws, timeout_s: float = 30.0) -> tuple[list[dict], int | None]:
    """Read until the server closes; return the error bodies received and the close code."""
    errors = []
    async with asyncio.timeout(timeout_s):
        while True:
            try:
                msg = json.loads(await ws.recv())
            except websockets.ConnectionClosed:
                break
            if "error" in msg:
                errors.append(msg["error"])
    return errors, ws.close_code


def check_segments(r) -> None:
    """Integer ids, finality on segments and words, finals never changed, everything final at the end.
    ``r`` is a :class:`StreamResult` or an in-process session (tests/fast/ws.py) of the same shape."""
    assert not r.final_changed, r.final_changed
    assert r.segments and r.all_final
    assert all(isinstance(i, int) for i in r.segments)
    for seg in r.segments.values():
        assert seg["words"], seg
        assert all(w["is_final"] is True for w in seg["words"])
        assert seg["start"] <= seg["end"]
    ids_in_order = [s["id"] for _, m in r.messages for s in m.get("segments", [])]
    first_seen = list(dict.fromkeys(ids_in_order))
    assert first_seen == sorted(first_seen) == list(range(len(first_seen)))  # new ids appear in increasing order


def first_appearance(result: StreamResult) -> list[tuple[str, float, float]]:
    """For each final word: (word, its audio end time, wall time its segment first showed it).

    A word "appears" in the first patch of its segment whose text contains it at the same position
    (counting words), which is how a reader would see it.
    """
    from tests.audio_utils import normalize

    out = []
    history: dict[int, list[tuple[float, list[str]]]] = {}
    for t, msg in result.messages:
        for seg in msg.get("segments", []):
            history.setdefault(seg["id"], []).append((t, normalize(seg["text"]).split()))
    for sid, seg in result.segments.items():
        if not seg["is_final"]:
            continue
        for k, w in enumerate(seg.get("words", [])):
            target = normalize(w["word"])
            if not target:
                continue
            seen = next((t for t, words in history.get(sid, []) if len(words) > k and words[k] == target), None)
            if seen is not None:
                out.append((w["word"], float(w["end"]), seen))
    return out


def sent_wall(result: StreamResult, audio_t: float) -> float:
    """Wall time (seconds since t0) at which the frame holding audio time ``audio_t`` was sent."""
    return next((ts for ts, a in result.sent_audio if a >= audio_t - 1e-6), result.sent_audio[-1][0])


def first_commit(result: StreamResult) -> list[tuple[str, float, float]]:
    """For each word of the final transcript: (word, its audio end time, wall time it was first sent final).

    A word is committed by the first message carrying it with ``is_final: true``, on the word itself or on
    its segment; final words never change, so the word at that position of the segment is the final one.
    """
    from tests.audio_utils import normalize

    committed: dict[tuple[int, int], float] = {}
    for t, msg in result.messages:
        for seg in msg.get("segments", []):
            for k, w in enumerate(seg.get("words", [])):
                if (w.get("is_final") or seg["is_final"]) and (seg["id"], k) not in committed:
                    committed[(seg["id"], k)] = t
    out = []
    for sid, seg in sorted(result.segments.items()):
        for k, w in enumerate(seg.get("words", [])):
            if normalize(w["word"]) and (sid, k) in committed:
                out.append((w["word"], float(w["end"]), committed[(sid, k)]))
    return out


def commit_lags(result: StreamResult) -> list[float]:
    """Per word of the final transcript: when it was first sent final minus when its end was sent."""
    return [max(0.0, seen - sent_wall(result, end)) for _, end, seen in first_commit(result)]
