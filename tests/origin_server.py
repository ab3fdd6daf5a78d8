"""A real HTTP origin on a loopback address, for URL-fetch tests: serves bytes, redirects, trickles."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    """What one path answers: a body (sent whole, or ``trickle_s`` per byte), or a redirect."""

    body: bytes = b""
    status: int = 200
    location: str | None = None
    trickle_s: float = 0.0
    content_length: bool = True


@dataclass
class Origin:
    """A threaded HTTP server on ``host``; ``hits`` records (path, Host header) of every request."""

    host: str = "127.0.0.1"
    port: int = 0
    routes: dict[str, Route] = field(default_factory=dict)
    hits: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._httpd = ThreadingHTTPServer((self.host, self.port), _handler(self))
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def url(self, path: str, host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    def __enter__(self) -> Origin:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _handler(origin: Origin) -> Callable[..., BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            origin.hits.append((self.path, self.headers.get("Host", "")))
            route = origin.routes.get(self.path)
            if route is None:
                self.send_error(404)
                return
            self.send_response(route.status)
            if route.location:
                self.send_header("Location", route.location)
            if route.content_length:
                self.send_header("Content-Length", str(len(route.body)))
            else:
                self.send_header("Connection", "close")  # body ends when the connection does
            self.end_headers()
            try:
                if route.trickle_s:
                    for i in range(len(route.body)):
                        self.wfile.write(route.body[i : i + 1])
                        self.wfile.flush()
                        time.sleep(route.trickle_s)  # the slow origin under test, not synchronisation
                else:
                    self.wfile.write(route.body)
            except OSError:
                pass  # the fetcher gave up, as it should
            if not route.content_length:
                self.close_connection = True

    return Handler
