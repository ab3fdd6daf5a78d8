"""WebSocket helpers for the in-process layer (starlette's ``TestClient.websocket_connect``)."""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from starlette.websockets import WebSocketDisconnect

from tests.audio_utils import float_to_pcm16
from tests.stream_client import PATH, SR


def url(**params: Any) -> str:
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    return PATH + (f"?{query}" if query else "")


@dataclass
class Session:
    """What one session received: messages in order, segments merged by id, checkpoints, errors, close code
    (the shape of :class:`tests.stream_client.StreamResult`, without wall times)."""

    messages: list[tuple[float, dict]] = field(default_factory=list)  # (0.0, message): no clock in-process
    segments: dict[int, dict] = field(default_factory=dict)
    final_changed: list[str] = field(default_factory=list)
    checkpoints: list[str] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    close_code: int | None = None

    def add(self, msg: dict) -> None:
        self.messages.append((0.0, msg))
        for seg in msg.get("segments", []):
            old = self.segments.get(seg["id"])
            if old is not None and old["is_final"]:
                self.final_changed.append(f"segment {seg['id']} re-sent after final: {old['text']!r} -> {seg['text']!r}")
            self.segments[seg["id"]] = seg
        if "checkpoint_id" in msg:
            self.checkpoints.append(msg["checkpoint_id"])
        if "error" in msg:
            self.errors.append(msg["error"])

    @property
    def all_final(self) -> bool:
        return all(s["is_final"] for s in self.segments.values())

    @property
    def text(self) -> str:
        return " ".join(s["text"].strip() for _, s in sorted(self.segments.items()) if s["text"].strip())

    def read_until(self, ws, checkpoint: str | None = "final") -> Session:
        """Receive until ``checkpoint`` is answered or the app closes the socket."""
        while True:
            try:
                msg = ws.receive_json()
            except WebSocketDisconnect as closed:
                self.close_code = closed.code
                return self
            self.add(msg)
            if checkpoint is not None and msg.get("checkpoint_id") == checkpoint:
                return self


def send_audio(ws, samples: np.ndarray, frame_s: float = 0.1) -> None:
    frame = int(frame_s * SR)
    for i in range(0, len(samples), frame):
        ws.send_bytes(float_to_pcm16(samples[i : i + frame]))


def checkpoint(ws, name: str = "final") -> None:
    ws.send_text(json.dumps({"checkpoint_id": name}))


def stream(client, samples: np.ndarray, headers: dict | None = None, frame_s: float = 0.1, **params: Any) -> Session:
    """One whole session: the audio, then the final checkpoint; everything received until its answer."""
    with client.websocket_connect(url(**params), headers=dict(headers or {})) as ws:
        send_audio(ws, samples, frame_s)
        checkpoint(ws)
        return Session().read_until(ws)


def expect_close(ws) -> tuple[list[dict], int | None]:
    """Read until the app closes; the error bodies received and the close code."""
    s = Session().read_until(ws, checkpoint=None)
    return s.errors, s.close_code
