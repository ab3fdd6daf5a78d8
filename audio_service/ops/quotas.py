"""Per-key quotas: requests per minute and audio seconds per minute (fixed one-minute windows).

Counters live in the ``limits`` library's storage: in memory (per process) by default, in Redis
when ``quotas.storage`` is a ``redis://`` URI, so several server processes share one budget.
Audio is counted in milliseconds. A batch file is charged its decoded duration once it has been
transcribed (the last request of a window may overdraw it; the next one is refused), a stream is
charged frame by frame as audio arrives (a frame over the budget is refused and the stream ends).
Every response to a caller with a key carries OpenAI-style ``x-ratelimit-*`` headers.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerMinute
from limits.aio.strategies import FixedWindowRateLimiter
from limits.storage import storage_from_string

from audio_service.errors import CloseCode, OverloadedError
from audio_service.keys import KeyIdentity
from audio_service.settings import Settings

log = logging.getLogger(__name__)
WINDOW_S = 60.0


class QuotaExceededError(OverloadedError):
    """A key's request or audio budget is spent; ``retry_after_s`` says when it refills."""

    default_code = "rate_limit_exceeded"
    close_code = CloseCode.QUOTA_EXCEEDED


@dataclass(frozen=True)
class QuotaState:
    """What the ``x-ratelimit-*`` headers report; limits of 0 mean unlimited."""

    limit_requests: int
    remaining_requests: int
    reset_requests_s: float
    limit_audio_s: float
    remaining_audio_s: float
    reset_audio_s: float

    def headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.limit_requests:
            out["x-ratelimit-limit-requests"] = str(self.limit_requests)
            out["x-ratelimit-remaining-requests"] = str(self.remaining_requests)
            out["x-ratelimit-reset-requests"] = format_duration(self.reset_requests_s)
        if self.limit_audio_s:
            out["x-ratelimit-limit-audio-seconds"] = f"{self.limit_audio_s:g}"
            out["x-ratelimit-remaining-audio-seconds"] = f"{math.floor(self.remaining_audio_s):d}"
            out["x-ratelimit-reset-audio-seconds"] = format_duration(self.reset_audio_s)
        return out


def _until(reset_time: float, now: float) -> float:
    """Seconds from ``now`` to a window's reset, at most one window: the store reads the clock again after
    ``now`` (its own stamps are a moment later), so a fresh window would otherwise reset in 1m1s."""
    return min(WINDOW_S, max(0.0, reset_time - now))


def format_duration(seconds: float) -> str:
    """OpenAI's reset format: ``250ms``, ``17s``, ``1m0s``."""
    if seconds < 1:
        return f"{max(0, int(seconds * 1000))}ms"
    minutes, secs = divmod(int(math.ceil(seconds)), 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def _async_uri(uri: str) -> str:
    return uri if uri.startswith("async+") else "async+" + uri


class Quotas:
    """The quota checks of one app; methods are coroutines (Redis I/O never blocks the loop)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        uri = _async_uri(settings.quotas.storage)
        options = {"implementation": "redispy"} if "redis" in uri.split("://", 1)[0] else {}
        self._limiter = FixedWindowRateLimiter(storage_from_string(uri, **options))

    # --- per-key limits ---
    def requests_limit(self, who: KeyIdentity) -> int:
        v = who.requests_per_minute
        return int(self._settings.quotas.requests_per_minute if v is None else v)

    def audio_limit_s(self, who: KeyIdentity) -> float:
        v = who.audio_seconds_per_minute
        return float(self._settings.quotas.audio_seconds_per_minute if v is None else v)

    def streams_limit(self, who: KeyIdentity) -> int:
        return int(self._settings.quotas.max_streams_per_key if who.max_streams is None else who.max_streams)

    def _requests_item(self, who: KeyIdentity) -> RateLimitItemPerMinute:
        return RateLimitItemPerMinute(self.requests_limit(who), namespace="requests")

    def _audio_item(self, who: KeyIdentity) -> RateLimitItemPerMinute:
        return RateLimitItemPerMinute(max(1, int(self.audio_limit_s(who) * 1000)), namespace="audio_ms")

    # --- checks ---
    async def hit_request(self, who: KeyIdentity) -> None:
        """Count one request; raise :class:`QuotaExceededError` when the key is over its request limit."""
        if self.requests_limit(who) and not await self._safe(self._limiter.hit(self._requests_item(who), who.name), True):
            raise self._exceeded("requests", await self.state(who))

    async def check_audio(self, who: KeyIdentity) -> None:
        """Raise :class:`QuotaExceededError` when nothing is left of the key's audio budget."""
        if self.audio_limit_s(who) and not await self._safe(self._limiter.test(self._audio_item(who), who.name), True):
            raise self._exceeded("audio_seconds", await self.state(who))

    async def charge_audio(self, who: KeyIdentity, seconds: float) -> None:
        """Record audio that was processed (may overdraw: the following requests are refused)."""
        if self.audio_limit_s(who) and seconds > 0:
            await self._safe(self._limiter.hit(self._audio_item(who), who.name, cost=max(1, round(seconds * 1000))), True)

    async def take_stream_audio(self, who: KeyIdentity, seconds: float) -> bool:
        """Charge a stream frame if it fits the budget; False (nothing charged) if it does not."""
        if not self.audio_limit_s(who):
            return True
        item, cost = self._audio_item(who), max(1, round(seconds * 1000))
        if not await self._safe(self._limiter.test(item, who.name, cost=cost), True):
            return False
        await self._safe(self._limiter.hit(item, who.name, cost=cost), True)
        return True

    async def state(self, who: KeyIdentity) -> QuotaState:
        now = time.time()
        req = await self._safe(self._limiter.get_window_stats(self._requests_item(who), who.name), None)
        aud = await self._safe(self._limiter.get_window_stats(self._audio_item(who), who.name), None)
        req_limit, aud_limit = self.requests_limit(who), self.audio_limit_s(who)
        return QuotaState(
            limit_requests=req_limit,
            remaining_requests=req.remaining if req else req_limit,
            reset_requests_s=_until(req.reset_time, now) if req else 0.0,
            limit_audio_s=aud_limit,
            remaining_audio_s=aud.remaining / 1000 if aud else aud_limit,
            reset_audio_s=_until(aud.reset_time, now) if aud else 0.0,
        )

    def exceeded_stream_error(self, state: QuotaState, accepted_s: float) -> QuotaExceededError:
        return self._exceeded(
            "audio_seconds",
            state,
            f" {accepted_s:.1f} s of this stream's audio were accepted and transcribed; later audio was not.",
        )

    @staticmethod
    def _exceeded(limit: str, state: QuotaState, extra: str = "") -> QuotaExceededError:
        if limit == "requests":
            what, reset = f"{state.limit_requests} requests per minute", state.reset_requests_s
        else:
            what, reset = f"{state.limit_audio_s:g} audio seconds per minute", state.reset_audio_s
        return QuotaExceededError(
            f"Rate limit reached for this API key: {what}. Retry in {format_duration(reset)}.{extra}",
            retry_after_s=max(1, math.ceil(reset)),
        )

    @staticmethod
    async def _safe(coro, fallback):
        """A storage failure (Redis down) must not take the API down: log it and let the request through."""
        try:
            return await coro
        except Exception as exc:  # noqa: BLE001 - any storage error
            log.warning("quota storage unavailable (%s): not enforcing quotas for this call", exc)
            return fallback
