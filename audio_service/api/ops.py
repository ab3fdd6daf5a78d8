"""The operations services of one app: keys, quotas, metrics, drain (built once in ``create_app``)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from audio_service.keys import KeyIdentity, KeyStore
from audio_service.ops.drain import Drain
from audio_service.ops.metrics import Metrics
from audio_service.ops.quotas import QuotaExceededError, Quotas
from audio_service.settings import Settings


@dataclass(frozen=True)
class Ops:
    keys: KeyStore
    quotas: Quotas
    metrics: Metrics
    drain: Drain

    @classmethod
    def build(cls, settings: Settings) -> Ops:
        return cls(
            keys=KeyStore([k.get_secret_value() for k in settings.auth.api_keys], settings.auth.keys_file),
            quotas=Quotas(settings),
            metrics=Metrics(),
            drain=Drain(),
        )

    async def check_audio(self, request: Request, who: KeyIdentity) -> None:
        """Refuse (429) when the caller's audio budget is spent; the request is counted as a quota rejection."""
        try:
            await self.quotas.check_audio(who)
        except QuotaExceededError:
            request.state.quota_limit = "audio_seconds"
            raise

    async def batch_done(self, request: Request, who: KeyIdentity, model: str, audio_s: float, processing_s: float) -> None:
        """A batch request's audio: charged to the key's budget, counted in metrics and the request log."""
        request.state.audio_s = audio_s
        await self.charge_batch(who, model, audio_s, processing_s)

    async def charge_batch(self, who: KeyIdentity, model: str, audio_s: float, processing_s: float) -> None:
        """Batch audio (a request's or a job's): charged to the key's budget and counted in metrics."""
        self.metrics.observe_audio("batch", model, audio_s, processing_s)
        await self.quotas.charge_audio(who, audio_s)
