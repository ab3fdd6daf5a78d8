"""Exceptions raised by the client; each carries the server's error object when there was one."""

from __future__ import annotations

from typing import Any


class AudioServiceError(Exception):
    """Base class: ``message``, ``type``, ``param``, ``code`` from the server's ``{"error": {...}}``."""

    def __init__(
        self,
        message: str,
        *,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        status_code: int | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.status_code = status_code
        self.body = body

    def __str__(self) -> str:
        where = f" (param {self.param})" if self.param else ""
        status = f"{self.status_code} " if self.status_code else ""
        kind = f"{self.type}: " if self.type else ""
        return f"{status}{kind}{self.message}{where}"


class APIConnectionError(AudioServiceError):
    """The server could not be reached, or the connection broke."""


class APIStatusError(AudioServiceError):
    """The server answered an HTTP request with a 4xx/5xx status."""


class BadRequestError(APIStatusError):
    """400: a parameter or the audio was invalid."""


class AuthenticationError(APIStatusError):
    """401: missing or wrong API key."""


class NotFoundError(APIStatusError):
    """404: unknown model or route."""


class PayloadTooLargeError(APIStatusError):
    """413: the upload exceeds the server's limit."""


class RateLimitError(APIStatusError):
    """429: the server is busy; ``retry_after`` seconds are suggested."""

    retry_after: float | None = None


class InternalServerError(APIStatusError):
    """5xx: the server failed or a model is unavailable."""


class StreamError(AudioServiceError):
    """The streaming endpoint sent an error message and/or closed the WebSocket with an error code."""

    def __init__(self, message: str, *, close_code: int | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.close_code = close_code

    def __str__(self) -> str:
        return f"{super().__str__()} [close code {self.close_code}]"


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFoundError,
    413: PayloadTooLargeError,
    422: BadRequestError,
    429: RateLimitError,
}


def error_from_body(status: int, body: Any, headers: Any = None) -> APIStatusError:
    """Build the exception for an HTTP error response (``body``: parsed JSON or text)."""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        fields = {k: err.get(k) for k in ("type", "param", "code")}
        message = str(err.get("message") or f"HTTP {status}")
    else:
        fields = {"type": None, "param": None, "code": None}
        message = str(body or f"HTTP {status}")
    cls = _BY_STATUS.get(status, InternalServerError if status >= 500 else APIStatusError)
    exc = cls(message, status_code=status, body=body, **fields)
    if isinstance(exc, RateLimitError) and headers is not None and headers.get("retry-after"):
        try:
            exc.retry_after = float(headers["retry-after"])
        except ValueError:
            pass
    return exc
