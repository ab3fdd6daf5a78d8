"""uvicorn with a drain before its shutdown (see :mod:`audio_service.ops.drain` for the order of events)."""

from __future__ import annotations

import asyncio
import signal
from types import FrameType

import uvicorn

from audio_service.ops.drain import Drain


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
