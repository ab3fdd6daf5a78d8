"""A bounded pool of inference workers shared by all batch requests.

Work runs in threads (CTranslate2 and numpy release the GIL), so the event loop stays free:
``/health`` answers while a long file is transcribed. A request that finds every worker busy waits
in the waiting room; when it is full (``batch.max_queued_requests``), :class:`OverloadedError` tells the
client to retry later instead of letting the backlog, and the memory it holds, grow without bound.

The waiting room's seats are :mod:`audio_service.leases`: counted in this process, or, with a Redis
``quotas.storage``, across the whole deployment (every Ray Serve replica shares one waiting room).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from audio_service.errors import OverloadedError
from audio_service.leases import Lease, Leases
from audio_service.models.priority import BATCH_NICENESS, lower_thread_priority

T = TypeVar("T")


@dataclass
class Ticket:
    """One admitted request: its waiting-room seat, given back when its first step starts on a worker."""

    seat: Lease | None = None


class WorkQueue:
    def __init__(
        self, workers: int, max_waiting: int, retry_after_s: int = 5, name: str = "inference", seats: Leases | None = None
    ) -> None:
        # Workers (decode, VAD, post-processing) run below the event loop's priority and below live
        # streams' (models/priority.py): a long upload must not delay a stream's final segments.
        self._workers = max(1, workers)
        self._executor = ThreadPoolExecutor(
            self._workers, thread_name_prefix=name, initializer=lower_thread_priority, initargs=(BATCH_NICENESS,)
        )
        self._free = asyncio.Semaphore(self._workers)  # a step holds one while it runs on a worker
        self._max_waiting = max(0, max_waiting)
        self._seats = seats or Leases()
        self._name = name
        self._pending = 0  # steps running or waiting for a worker
        self._retry_after_s = retry_after_s

    @property
    def admitted(self) -> int:
        """Work running or waiting right now, in this process."""
        return self._pending

    @contextlib.asynccontextmanager
    async def admission(self) -> AsyncIterator[Ticket]:
        """Admit one request (its steps then go to :meth:`work`); :class:`OverloadedError` when it would
        have to wait and the waiting room is full."""
        ticket = Ticket()
        if self._pending >= self._workers:
            ticket.seat = await self._seats.acquire(self._name, self._max_waiting)
            if ticket.seat is None:
                raise OverloadedError(
                    f"The server is busy ({self._pending} requests in progress here, the waiting room of "
                    f"{self._max_waiting} is full); retry later.",
                    retry_after_s=self._retry_after_s,
                )
        try:
            yield ticket
        finally:
            await self._seated(ticket)

    async def work(self, fn: Callable[..., T], *args: object, ticket: Ticket | None = None) -> T:
        """Run ``fn(*args)`` on a worker thread once one is free (never refused: admission is the limit)."""
        self._pending += 1  # single event-loop thread: no lock needed
        try:
            async with self._free:
                if ticket is not None:
                    await self._seated(ticket)
                return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            self._pending -= 1

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Admit a request and run ``fn(*args)`` on a worker thread, or raise :class:`OverloadedError`."""
        async with self.admission() as ticket:
            return await self.work(fn, *args, ticket=ticket)

    async def _seated(self, ticket: Ticket) -> None:
        seat, ticket.seat = ticket.seat, None
        if seat is not None:
            await self._seats.release(seat)

    async def close(self) -> None:
        """Give back the waiting-room seats still held (a Redis heartbeat stops)."""
        await self._seats.close()

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
