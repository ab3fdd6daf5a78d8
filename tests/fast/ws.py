"""WebSocket helpers for the in-process layer (starlette's ``TestClient.websocket_connect``)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from starlette.websockets import WebSocketDisconnect

from tests.audio_utils import float_to_pcm16
from tests.stream_client import SR, StreamResult, url_for


def url(**params: Any) -> str:
    return url_for("", **params)


class Session(StreamResult):
    """What one session received (:class:`tests.stream_client.StreamResult`; no wall clock in-process)."""

    def read_until(self, ws, checkpoint: str | None = "final") -> Session:
        """Receive until ``checkpoint`` is answered or the app closes the socket."""
        while True:
            try:
                msg = ws.receive_json()
            except WebSocketDisconnect as closed:
                self.close_code = closed.code
                return self
            self.merge(0.0, msg)
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
