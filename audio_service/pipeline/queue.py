"""A bounded pool of inference workers shared by all batch requests.

Work runs in threads (CTranslate2 and numpy release the GIL), so the event loop stays free:
``/health`` answers while a long file is transcribed. When every worker is busy and the waiting
room is full, :class:`OverloadedError` tells the client to retry later instead of letting the
backlog, and the memory it holds, grow without bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from audio_service.errors import OverloadedError
from audio_service.models.priority import BATCH_NICENESS, lower_thread_priority

T = TypeVar("T")


class WorkQueue:
    def __init__(self, workers: int, max_waiting: int, retry_after_s: int = 5, name: str = "inference") -> None:
        # Workers (decode, VAD, post-processing) run below the event loop's priority and below live
        # streams' (models/priority.py): a long upload must not delay a stream's final segments.
        self._executor = ThreadPoolExecutor(
            max_workers=max(1, workers), thread_name_prefix=name, initializer=lower_thread_priority, initargs=(BATCH_NICENESS,)
        )
        self._capacity = max(1, workers) + max(0, max_waiting)
        self._admitted = 0
        self._retry_after_s = retry_after_s

    @property
    def admitted(self) -> int:
        """Jobs running or waiting right now."""
        return self._admitted

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` on a worker thread, or raise :class:`OverloadedError` if the queue is full."""
        if self._admitted >= self._capacity:
            raise OverloadedError(
                f"The server is busy ({self._admitted} requests in progress); retry later.",
                retry_after_s=self._retry_after_s,
            )
        self._admitted += 1  # single event-loop thread: no lock needed
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            self._admitted -= 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
