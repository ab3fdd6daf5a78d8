"""HTTP helpers shared by the real-server tests and the in-process ones (tests/fast/).

A *target* is either a running server (:class:`tests.server.ServerProcess`, called through its ``base_url``)
or a client already bound to the app (starlette's ``TestClient``: anything with a ``request`` method).
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import threading
from typing import Any

import httpx

from tests.audio_utils import JFK

TRANSCRIPTIONS = "/v1/audio/transcriptions"
TRANSLATIONS = "/v1/audio/translations"
JOBS = TRANSCRIPTIONS + "/jobs"


def request(target: Any, method: str, path: str, **kw: Any) -> httpx.Response:
    """``method path`` on a server or a bound client (300 s timeout on a server unless given)."""
    if is_client(target):
        return target.request(method, path, **kw)
    kw.setdefault("timeout", 300)
    return httpx.request(method, f"{target.base_url}{path}", **kw)


def is_client(target: Any) -> bool:
    """A client bound to the app (starlette's ``TestClient`` subclasses its own httpx, not this one's)."""
    return callable(getattr(target, "request", None))


def post(target: Any, file=None, data=None, headers=None, path: str = TRANSCRIPTIONS, **kw: Any) -> httpx.Response:
    """A multipart POST (the batch endpoints' form); ``file`` is a (name, bytes, content type) tuple."""
    files = {"file": file} if file is not None else None
    return request(target, "POST", path, files=files, data=data or {}, headers=headers, **kw)


def jfk_file() -> tuple[str, bytes, str]:
    """The 11 s jfk recording as a multipart file."""
    return ("jfk.flac", JFK.read_bytes(), "audio/flac")


def assert_error(r: httpx.Response, status: int, param: str | None = None, code: str | None = None) -> dict:
    """``r`` is the service's error: this status and ``{"error": {"message","type","param","code"}}``."""
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["message"] and isinstance(err["message"], str)
    if param is not None:
        assert err["param"] == param, err
    if code is not None:
        assert err["code"] == code, err
    return err


class Receiver:
    """A local HTTP server that records callbacks; the first ``fail_first`` answers are 500."""

    def __init__(self, fail_first: int = 0) -> None:
        self.calls: list[tuple[dict[str, str], bytes, int]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = 500 if len(receiver.calls) < fail_first else 200
                receiver.calls.append(({k.lower(): v for k, v in self.headers.items()}, body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def signature(secret: str, headers: dict[str, str], body: bytes) -> str:
    """The X-Audio-Service-Signature a callback with these (lower-cased) headers should carry."""
    signed = headers["x-audio-service-timestamp"].encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
