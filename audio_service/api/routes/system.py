"""Health, readiness and the model list."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from audio_service.api.deps import Services, get_services, require_api_key
from audio_service.api.errors import error_body
from audio_service.extras import installed_features

router = APIRouter(tags=["system"])
_CREATED = int(time.time())


@router.get("/health", summary="Liveness: answers while the server runs; lists the optional features installed")
async def health() -> dict:
    return {"status": "ok", "features": installed_features()}


@router.get("/ready", summary="Readiness: 200 once the preloaded models are loaded")
async def ready(services: Services = Depends(get_services)) -> JSONResponse:
    if services.ops.drain.draining:
        return JSONResponse(error_body("The server is shutting down.", "server_error", None, "server_shutting_down"), 503)
    if not services.ready:
        return JSONResponse(error_body("Models are still loading.", "server_error", None, "not_ready"), 503)
    loaded = [s.id for s in services.registry.specs() if services.registry.is_loaded(s.id)]
    return JSONResponse({"status": "ready", "models": loaded})


def _model_card(model_id: str, services: Services, alias_of: str | None = None) -> dict:
    card = {"id": model_id, "object": "model", "created": _CREATED, "owned_by": "audio-service"}
    if alias_of:
        card["alias_of"] = alias_of
    else:
        spec = services.registry.resolve(model_id)
        card["source"] = spec.source
        card["loaded"] = services.registry.is_loaded(model_id)
    return card


@router.get("/v1/models", dependencies=[Depends(require_api_key)], summary="List models and aliases")
async def list_models(services: Services = Depends(get_services)) -> dict:
    cards = [_model_card(s.id, services) for s in services.registry.specs()]
    cards += [_model_card(a, services, t) for a, t in sorted(services.registry.aliases().items())]
    return {"object": "list", "data": cards}


@router.get("/v1/models/{model_id:path}", dependencies=[Depends(require_api_key)], summary="Describe one model")
async def get_model(model_id: str, services: Services = Depends(get_services)) -> dict:
    spec = services.registry.resolve(model_id)
    return _model_card(model_id, services, spec.id if spec.id != model_id else None)
