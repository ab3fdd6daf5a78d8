"""``GET /metrics``: the app's Prometheus registry (:class:`audio_service.ops.metrics.Metrics`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from audio_service.api.deps import Services

router = APIRouter(tags=["system"])


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    services: Services = request.app.state.services
    m = services.ops.metrics
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)
