"""Graceful drain on SIGTERM: refuse new work, finish what is in flight, flush every stream.

The order matters, so the server runs uvicorn through :class:`audio_service.server.draining.DrainingServer`, whose signal
handler starts :meth:`Drain.run` *before* uvicorn begins its own shutdown (which would close
connections): ``/ready`` turns 503 at once, new requests get 503 and new streams close with 1012,
in-flight HTTP requests finish, and every open stream gets its buffered audio transcribed and its
segments sent final, then closes with 1012 so its client reconnects elsewhere. Only then (or after
``server.shutdown_grace_s``) does uvicorn shut down; the process exits with status 0.
"""

from __future__ import annotations

import asyncio
import logging

from audio_service.errors import CloseCode, ServiceError

log = logging.getLogger(__name__)


class ShuttingDownError(ServiceError):
    """The server is draining before it stops: retry on another instance."""

    status_code = 503
    error_type = "server_error"
    default_code = "server_shutting_down"
    close_code = CloseCode.SERVICE_RESTART


class Drain:
    """Counts in-flight requests and open streams; :meth:`run` waits for them after telling streams to stop."""

    def __init__(self) -> None:
        self.draining = False
        self._requests = 0
        self._streams: set[asyncio.Event] = set()
        self._changed = asyncio.Event()

    def request_started(self) -> None:
        self._requests += 1  # event loop only: no lock

    def request_finished(self) -> None:
        self._requests -= 1
        self._changed.set()

    def add_stream(self, stop: asyncio.Event) -> None:
        """Register a stream's stop signal (set at drain: the stream flushes and closes with 1012)."""
        self._streams.add(stop)
        if self.draining:
            stop.set()

    def remove_stream(self, stop: asyncio.Event) -> None:
        self._streams.discard(stop)
        self._changed.set()

    def error(self) -> ShuttingDownError:
        return ShuttingDownError("The server is shutting down; retry on another instance.")

    async def run(self, grace_s: float) -> None:
        """Start draining and wait until nothing is in flight (at most ``grace_s``)."""
        self.draining = True
        log.info("draining: %d request(s) and %d stream(s) in flight", self._requests, len(self._streams))
        for stop in list(self._streams):
            stop.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        while self._requests > 0 or self._streams:
            self._changed.clear()
            left = deadline - loop.time()
            if left <= 0:
                log.warning("drain: grace period over with %d request(s), %d stream(s) left", self._requests, len(self._streams))
                return
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=left)
            except asyncio.TimeoutError:
                pass
        log.info("drained")
