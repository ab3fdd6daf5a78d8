"""Logging set-up: plain text or one JSON object per line (``Settings.server.log_format``).

Request and stream-end lines are logged on the ``audio_service.requests`` logger with their fields
in ``extra={"fields": {...}}``: JSON lines carry them as top-level keys, text lines as ``k=v``.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

REQUEST_LOGGER = "audio_service.requests"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", ...fields}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    """The usual text line, with a record's fields appended as ``key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "fields", None)
        if fields:
            line += " " + " ".join(f"{k}={_text(v)}" for k, v in fields.items())
        return line


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    text = str(value)
    return json.dumps(text) if (" " in text or not text) else text


def configure_logging(level: str, fmt: str) -> None:
    """Root handler on stderr; uvicorn's loggers propagate to it so every line has one format."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def log_request(fields: dict[str, Any], message: str = "request") -> None:
    """One structured line per finished request or stream."""
    logging.getLogger(REQUEST_LOGGER).info(message, extra={"fields": fields})
