"""Operations of one WebSocket stream: metrics, audio quota, the stop signal, the end-of-stream log.

The WebSocket endpoint calls a :class:`StreamMonitor` at each step (frame in, message out, close)
and waits on :attr:`StreamMonitor.stop` beside the socket: it is set when the server drains. To
end a stream without losing accepted audio, the endpoint puts an internal checkpoint behind it
(:meth:`StreamMonitor.flush_checkpoint`); the session answers it once every segment before it is
final, and the endpoint swallows that answer (:meth:`StreamMonitor.intercept`) and closes.
"""

from __future__ import annotations

import asyncio
import bisect
import time
import uuid
from typing import Any

from audio_service.api.ops import Ops
from audio_service.keys import KeyIdentity
from audio_service.logs import log_request
from audio_service.streaming.values import Checkpoint

KEEP_ARRIVALS_S = 180.0  # how much audio's arrival times are kept for latency metrics


class StreamMonitor:
    def __init__(self, ops: Ops, request_id: str, route: str = "/v1/audio/transcriptions/streaming") -> None:
        self.ops = ops
        self.request_id = request_id
        self.route = route
        self.who: KeyIdentity | None = None
        self.model = ""
        self.stop = asyncio.Event()
        self.flushed = asyncio.Event()
        self.close_code: int | None = None
        self.received_s = 0.0
        self.decode_s = lambda: 0.0  # set by the endpoint: the engine's decode time for this stream
        self.lag_s = lambda: 0.0
        self._token: str | None = None
        self._t0 = time.perf_counter()
        self._ends: list[float] = []  # audio position (s) at the end of each frame...
        self._times: list[float] = []  # ...and when it arrived
        self._open = False

    # --- life -------------------------------------------------------------------------------------
    def opened(self, model: str) -> None:
        """The stream was admitted: count it and let a drain stop it."""
        self.model, self._open = model, True
        self.ops.metrics.active_streams.labels(model).inc()
        self.ops.drain.add_stream(self.stop)

    def closed(self, code: int, sent: bool = True) -> None:
        """The server sent (or the client initiated) close ``code``."""
        if self.close_code is None:
            self.close_code = code
            if sent:
                self.ops.metrics.stream_closes.labels(str(code)).inc()

    def error(self, body: dict[str, Any]) -> None:
        """Count an error sent to the client (and the quota it hit, if any)."""
        err = body.get("error") or {}
        self.ops.metrics.errors.labels(str(err.get("code") or err.get("type") or "unknown")).inc()
        limit = {"rate_limit_exceeded": "audio_seconds", "too_many_streams": "streams"}.get(str(err.get("code")))
        if limit is not None and self.who is not None:
            self.ops.metrics.quota_rejections.labels(self.who.name, limit).inc()

    def finished(self) -> None:
        """Log the stream's line; count it and its audio's real-time factor."""
        m = self.ops.metrics
        elapsed = time.perf_counter() - self._t0
        if self._open:
            m.active_streams.labels(self.model).dec()
            m.streams.labels(self.model).inc()
            self.ops.drain.remove_stream(self.stop)
            if self.received_s > 0:
                m.realtime_factor.labels("streaming", self.model).observe(self.decode_s() / self.received_s)
        fields = {
            "request_id": self.request_id,
            "key": self.who.name if self.who is not None else None,
            "route": self.route,
            "model": self.model or None,
            "audio_s": round(self.received_s, 3),
            "processing_s": round(elapsed, 3),
            "close_code": self.close_code,
        }
        log_request(fields, "stream")

    # --- audio in ---------------------------------------------------------------------------------
    async def admit(self, seconds: float) -> bool:
        """Charge a frame to the key's audio budget; False when it does not fit (the frame is refused)."""
        assert self.who is not None
        if not await self.ops.quotas.take_stream_audio(self.who, seconds):
            return False
        self.received_s += seconds
        self._ends.append(self.received_s)
        self._times.append(time.monotonic())
        if len(self._ends) > 64 and self._ends[0] < self.received_s - KEEP_ARRIVALS_S:
            cut = bisect.bisect_left(self._ends, self.received_s - KEEP_ARRIVALS_S)
            del self._ends[:cut], self._times[:cut]
        self.ops.metrics.audio_seconds.labels("streaming", self.model).inc(seconds)
        return True

    # --- messages out -----------------------------------------------------------------------------
    def flush_checkpoint(self) -> Checkpoint:
        """An internal checkpoint: answered once all audio fed before it is transcribed and final."""
        self._token = f"__flush_{uuid.uuid4().hex}"
        self.flushed.clear()
        return Checkpoint(self._token)

    def intercept(self, message: Any) -> bool:
        """True for the answer to our own checkpoint (never shown to the client)."""
        if self._token is not None and isinstance(message, dict) and message.get("checkpoint_id") == self._token:
            self.flushed.set()
            return True
        return False

    def sent(self, message: Any) -> None:
        """Latency and lag of a message about to go to the client."""
        segments = message.get("segments") if isinstance(message, dict) else None
        if not segments:
            return
        now, m = time.monotonic(), self.ops.metrics
        for seg in segments:
            arrived = self._arrival(float(seg.get("end") or 0.0))
            if arrived is not None:
                (m.final_latency if seg.get("is_final") else m.partial_latency).labels(self.model).observe(
                    max(0.0, now - arrived)
                )
        m.stream_lag.labels(self.model).observe(max(0.0, self.lag_s()))

    def _arrival(self, position_s: float) -> float | None:
        """When the audio at ``position_s`` arrived (the frame that carried it)."""
        i = bisect.bisect_left(self._ends, position_s - 1e-6)
        return self._times[i] if i < len(self._times) else (self._times[-1] if self._times else None)
