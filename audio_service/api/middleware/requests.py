"""The operations middleware of every HTTP request (pure ASGI, so streamed responses pass through).

In order: a request id (the client's ``X-Request-ID`` if sane, else a new one; returned in the
response and put into error bodies as a top-level ``request_id``), refusal while draining, the
per-key request quota, then after the response: ``x-ratelimit-*`` headers, metrics and one log line.
Routes put what only they know (model, audio seconds) into ``request.state``.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audio_service.api.errors import error_response
from audio_service.api.ops import Ops
from audio_service.errors import ServiceError
from audio_service.logs import log_request
from audio_service.ops.auth import key_from_authorization
from audio_service.ops.quotas import QuotaExceededError

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
UNMETERED = frozenset({"/health", "/ready", "/metrics"})  # never refused, counted or logged
BATCH_ROUTES = frozenset({"/v1/audio/transcriptions", "/v1/audio/translations"})  # in-progress gauge labels


def request_id_from(value: str | None) -> str:
    """The client's id when it is a sane token (logged as is), else a fresh one."""
    return value if value and REQUEST_ID.match(value) else "req_" + uuid.uuid4().hex


class OpsMiddleware:
    def __init__(self, app: ASGIApp, ops: Ops) -> None:
        self.app = app
        self.ops = ops

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNMETERED:
            await self.app(scope, receive, send)
            return
        ops = self.ops
        t0 = time.perf_counter()
        headers = Headers(scope=scope)
        rid = request_id_from(headers.get("x-request-id"))
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        who = None
        if scope["path"].startswith("/v1/"):
            who = ops.keys.identify(key_from_authorization(headers.get("authorization")))
            state["key_identity"] = who
        result: dict[str, Any] = {"status": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                result["status"] = message["status"]
                out = MutableHeaders(scope=message)
                out["x-request-id"] = rid
                if who is not None:
                    for k, v in (await ops.quotas.state(who)).headers().items():
                        out[k] = v
                if message["status"] >= 400 and out.get("content-type", "").startswith("application/json"):
                    result["held"] = message  # error body: add the request id before sending
                    result["body"] = b""
                    return
            elif message["type"] == "http.response.body" and "held" in result:
                result["body"] += message.get("body", b"")
                if message.get("more_body"):
                    return
                await self._send_error(send, result, rid)
                return
            await send(message)

        ops.drain.request_started()
        in_progress = ops.metrics.batch_in_progress.labels(scope["path"]) if scope["path"] in BATCH_ROUTES else None
        if in_progress is not None:
            in_progress.inc()
        try:
            if ops.drain.draining:
                raise ops.drain.error()
            if who is not None:
                try:
                    await ops.quotas.hit_request(who)
                except QuotaExceededError:
                    ops.metrics.quota_rejections.labels(who.name, "requests").inc()
                    raise
            await self.app(scope, receive, send_wrapper)
        except ServiceError as exc:  # refused before the app ran
            await error_response(exc)(scope, receive, send_wrapper)
        finally:
            ops.drain.request_finished()
            if in_progress is not None:
                in_progress.dec()
            self._record(scope, result, who, time.perf_counter() - t0)

    async def _send_error(self, send: Send, result: dict[str, Any], rid: str) -> None:
        start, body = result.pop("held"), result.pop("body")
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            err = data["error"]
            self.ops.metrics.errors.labels(str(err.get("code") or err.get("type") or "unknown")).inc()
            data["request_id"] = rid
            body = json.dumps(data).encode()
            MutableHeaders(scope=start)["content-length"] = str(len(body))
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": False})

    def _record(self, scope: Scope, result: dict[str, Any], who, elapsed: float) -> None:
        state = scope.get("state", {})
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        method = scope.get("method", "")
        status = result["status"]
        model = state.get("model") or ""
        m = self.ops.metrics
        m.requests.labels(route, method, str(status), model).inc()
        m.request_duration.labels(route, method).observe(elapsed)
        if state.get("quota_limit") and who is not None:
            m.quota_rejections.labels(who.name, state["quota_limit"]).inc()
        fields = {
            "request_id": state.get("request_id"),
            "key": who.name if who is not None else None,
            "method": method,
            "route": route,
            "model": model or None,
            "audio_s": round(state.get("audio_s", 0.0), 3),
            "processing_s": round(elapsed, 3),
            "status": status,
        }
        log_request(fields)
