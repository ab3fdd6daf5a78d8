"""Concurrent WebSocket streams per API key: counted in this process, or in Redis for a whole deployment.

The counting is :mod:`audio_service.leases` (one lease per open stream, renewed by a heartbeat in Redis);
this module turns a refused lease into the stream's ``too_many_streams`` error.
"""

from __future__ import annotations

from audio_service.leases import Lease, Leases, leases
from audio_service.settings import Settings
from audio_service.streaming.protocol import TooManyStreamsError

KEY_PREFIX = "audio_service:streams:"


def _too_many(limit: int) -> TooManyStreamsError:
    return TooManyStreamsError(f"Too many concurrent streams for this API key (limit {limit}).", param="Authorization")


class StreamLimiter:
    """Streams per key, counted by ``counter`` (in this process by default). Used on the event loop only."""

    def __init__(self, counter: Leases | None = None) -> None:
        self.counter = counter or Leases(KEY_PREFIX)

    async def acquire(self, key: str | None, limit: int) -> Lease:
        """Count a stream of ``key``; :class:`TooManyStreamsError` when ``limit`` streams are open."""
        lease = await self.counter.acquire(str(key), limit)
        if lease is None:
            raise _too_many(limit)
        return lease

    async def release(self, lease: Lease) -> None:
        """Give the stream's slot back."""
        await self.counter.release(lease)

    async def close(self) -> None:
        """Stop renewing and give back the slots still held."""
        await self.counter.close()


def stream_limiter(settings: Settings) -> StreamLimiter:
    """In Redis when the quota storage is Redis (shared by the deployment), else in this process."""
    return StreamLimiter(leases(settings, KEY_PREFIX))
