"""Graceful drain on SIGTERM: refuse new work, finish what is in flight, flush every stream.

The order matters, so the server runs uvicorn through :class:`DrainingServer`, whose signal
handler starts :meth:`Drain.run` *before* uvicorn begins its own shutdown (which would close
connections): ``/ready`` turns 503 at once, new requests get 503 and new streams close with 1012,
in-flight HTTP requests finish, and every open stream gets its buffered audio transcribed and its
segments sent final, then closes with 1012 so its client reconnects elsewhere. Only then (or after
``shutdown_grace_s``) does uvicorn shut down; the process exits with status 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from types import FrameType

import uvicorn

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


class DrainingServer(uvicorn.Server):
    """uvicorn with a drain before its shutdown: the first SIGTERM/SIGINT drains, a second one stops at once."""

    def __init__(self, config: uvicorn.Config, drain: Drain, grace_s: float) -> None:
        super().__init__(config)
        self._drain = drain
        self._grace_s = grace_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_task: asyncio.Task | None = None

    async def startup(self, sockets=None) -> None:  # noqa: ANN001 - uvicorn's signature
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not recorded in uvicorn's captured signals: a drained server exits with status 0
        # instead of re-raising SIGTERM on itself.
        if self._loop is None or self._drain.draining:
            self.should_exit = True
            if sig == signal.SIGINT and self._drain.draining:
                self.force_exit = True
            return
        self._drain.draining = True  # refuse new work from this instant
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        self._drain_task = asyncio.ensure_future(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        try:
            await self._drain.run(self._grace_s)
        finally:
            self.should_exit = True
