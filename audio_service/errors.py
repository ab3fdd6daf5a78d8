"""Errors the service raises, independent of HTTP.

Each error type carries everything the edges need: its HTTP status, the OpenAI-style body
``{"error": {"message", "type", "param", "code"}}`` and the WebSocket close code a stream ends with.
"""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    """Every WebSocket close code the service sends (RFC 6455, section 7.4.1; 4029 is the service's own)."""

    NORMAL = 1000
    UNSUPPORTED_DATA = 1003  # a valid request this server cannot serve, or an unknown message type
    INVALID_PAYLOAD = 1007  # a frame the protocol does not allow (odd-length PCM, text that is not JSON)
    POLICY = 1008  # any other client error: bad parameters, keys, limits, a client that does not read
    TOO_BIG = 1009
    SERVER_ERROR = 1011
    SERVICE_RESTART = 1012  # the server drains before it stops: reconnect elsewhere
    TRY_AGAIN_LATER = 1013
    REPLICA_LOST = 1014  # "bad gateway": the proxy lost the replica serving this stream; reconnect
    QUOTA_EXCEEDED = 4029  # the key's audio budget ran out (audio already accepted was transcribed first)


class ServiceError(Exception):
    """Base class: a failure with a message meant for the client."""

    status_code = 500
    error_type = "server_error"
    default_code: str | None = None
    close_code = CloseCode.SERVER_ERROR

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code

    def body(self) -> dict:
        """The error as the client sees it, over HTTP and WebSocket alike."""
        return error_body(self.message, self.error_type, self.param, self.code)


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict:
    """``{"error": {"message", "type", "param", "code"}}``: the one error shape of the service."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class InvalidRequestError(ServiceError):
    """A parameter is missing, malformed, or inconsistent with another."""

    status_code = 400
    error_type = "invalid_request_error"
    default_code = "invalid_value"
    close_code = CloseCode.POLICY


class UnsupportedError(InvalidRequestError):
    """A valid option this server cannot serve (e.g. a model whose weights are absent)."""

    default_code = "unsupported"
    close_code = CloseCode.UNSUPPORTED_DATA


class AudioDecodeError(InvalidRequestError):
    """The input is not audio we can decode."""

    default_code = "invalid_audio"


class NotFoundError(ServiceError):
    status_code = 404
    error_type = "invalid_request_error"
    default_code = "not_found"
    close_code = CloseCode.POLICY


class PayloadTooLargeError(ServiceError):
    status_code = 413
    error_type = "invalid_request_error"
    default_code = "file_too_large"
    close_code = CloseCode.POLICY


class AuthenticationError(ServiceError):
    status_code = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"
    close_code = CloseCode.POLICY


class OverloadedError(ServiceError):
    """All workers are busy and the queue is full; the client should retry later."""

    status_code = 429
    error_type = "rate_limit_error"
    default_code = "server_busy"
    close_code = CloseCode.POLICY

    def __init__(self, message: str, *, retry_after_s: int = 5, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after_s = retry_after_s


class ModelUnavailableError(ServiceError):
    """A configured model failed to load (missing weights, no network for a hub id, ...)."""

    status_code = 503
    error_type = "server_error"
    default_code = "model_unavailable"


class FeatureNotInstalledError(UnsupportedError):
    """A request needs an optional feature whose packages (a pip extra) this installation lacks."""

    default_code = "feature_not_installed"


class RequestTimeoutError(ServiceError):
    """The client took too long to send its request."""

    status_code = 408
    error_type = "invalid_request_error"
    default_code = "request_timeout"
    close_code = CloseCode.POLICY


class StorageUnavailableError(ServiceError):
    """A shared storage (Redis) did not answer; the client may retry."""

    status_code = 503
    error_type = "server_error"
    default_code = "storage_unavailable"
