"""Slow and stuck clients against the real server: trickled headers and bodies, a multipart body that
never ends, a WebSocket client that stops reading. Each is timed out with the error body (or closed),
memory stays bounded, and normal requests are served meanwhile."""

from __future__ import annotations

import concurrent.futures
import json
import time

import httpx
import psutil
import pytest

from tests.audio_utils import JFK, JFK_TEXT, wer
from tests.conftest import SLOW_CLIENT_SEND_TIMEOUT_S, SLOW_CLIENT_TIMEOUTS
from tests.raw_client import (
    close_code,
    connect,
    parse_http_response,
    read_response,
    read_until_closed,
    trickle_until_answer,
    ws_frame,
    ws_frames,
    ws_handshake,
)

HEADER_S, IDLE_S, TOTAL_S = (
    SLOW_CLIENT_TIMEOUTS[k] for k in ("request_header_timeout_s", "upload_idle_timeout_s", "upload_timeout_s")
)
SEND_S = SLOW_CLIENT_SEND_TIMEOUT_S
SLACK_S = 15.0  # generous: a loaded 2-core machine may be slow to schedule the timers


@pytest.fixture(scope="module")
def slow_server(tiny_server):
    """The shared server with short slow-client timeouts (tests/conftest.py)."""
    return tiny_server


def transcribe_jfk(srv) -> str:
    with open(JFK, "rb") as f:
        r = httpx.post(f"{srv.base_url}/v1/audio/transcriptions", files={"file": f}, data={"language": "en"}, timeout=300)
    assert r.status_code == 200, r.text
    return r.json()["text"]


def assert_408(raw: bytes) -> dict:
    status, headers, body = parse_http_response(raw)
    assert status == 408, raw[:300]
    assert headers.get("connection") == "close"
    assert body["error"]["code"] == "request_timeout" and set(body["error"]) == {"message", "type", "param", "code"}
    return body


def test_trickled_headers_get_408(slow_server) -> None:
    sock = connect(slow_server.port)
    sock.sendall(b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\n")
    raw, elapsed = trickle_until_answer(sock, b"X-Slow: " + b"a" * 100, interval_s=0.5, limit_s=60)
    assert_408(raw)
    assert HEADER_S * 0.9 <= elapsed < HEADER_S + SLACK_S
    silent = connect(slow_server.port)  # a connection that never sends a byte is answered too
    assert_408(read_until_closed(silent, 60))


def test_trickled_headers_of_a_second_request_get_408(slow_server) -> None:
    sock = connect(slow_server.port)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _, _ = parse_http_response(read_response(sock))
    assert status == 200  # the connection is kept alive for a next request
    raw, elapsed = trickle_until_answer(sock, b"GET /health HTTP/1.1\r\nX-Slow: " + b"a" * 100, interval_s=0.5, limit_s=60)
    assert_408(raw)
    assert HEADER_S * 0.9 <= elapsed < HEADER_S + SLACK_S


def test_body_that_pauses_gets_408(slow_server) -> None:
    sock = connect(slow_server.port)
    start = time.monotonic()
    sock.sendall(
        b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
        b"Content-Type: multipart/form-data; boundary=XYZ\r\n\r\n"
        b'--XYZ\r\nContent-Disposition: form-data; name="language"\r\n\r\nen\r\n'
    )
    body = assert_408(read_until_closed(sock, 60))
    assert "paused" in body["error"]["message"]
    assert IDLE_S * 0.9 <= time.monotonic() - start < IDLE_S + SLACK_S


def test_endless_multipart_gets_408_while_others_are_served(slow_server) -> None:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        normal = pool.submit(transcribe_jfk, slow_server)
        sock = connect(slow_server.port)
        sock.sendall(
            b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: multipart/form-data; boundary=XYZ\r\n\r\n"
        )
        part = b'--XYZ\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        # A never-ending file part: a chunk of bytes every 0.5 s, each well within the idle limit.
        raw, elapsed = trickle_until_answer(sock, b"1\r\n\0\r\n", interval_s=0.1, limit_s=120)
        body = assert_408(raw)
        assert "longer than" in body["error"]["message"]
        assert TOTAL_S * 0.9 <= elapsed < TOTAL_S + SLACK_S
        assert wer(JFK_TEXT, normal.result(timeout=300)) < 0.2


def _server_side_connection(pid: int, server_port: int, client_port: int):
    for conn in psutil.Process(pid).net_connections(kind="tcp"):
        if conn.laddr and conn.laddr.port == server_port and conn.raddr and conn.raddr.port == client_port:
            return conn
    return None


def test_websocket_client_that_stops_reading_is_closed(slow_server) -> None:
    server = psutil.Process(slow_server.pid)
    rss_before = server.memory_info().rss
    sock = connect(slow_server.port, rcvbuf=4096)
    ws_handshake(sock, "/v1/audio/transcriptions/streaming?language=en")
    client_port = sock.getsockname()[1]
    # Every trace is echoed: 40k echoes (~10 MB) overflow every buffer between us and the server.
    trace = ws_frame(0x1, json.dumps({"object": "stt.input.trace", "trace_id": "t" * 200}).encode())
    sent = 0
    try:
        for _ in range(200):
            sock.sendall(trace * 200)
            sent += 200
    except OSError:
        pass  # the server closed us mid-way: what the test wants
    start = time.monotonic()
    assert transcribe_jfk(slow_server)  # the server keeps serving others meanwhile
    while time.monotonic() - start < SEND_S + 60:
        conn = _server_side_connection(slow_server.pid, slow_server.port, client_port)
        if conn is None or conn.status != psutil.CONN_ESTABLISHED:
            break
        time.sleep(0.2)  # polling the server's socket table, not synchronising with it
    else:
        pytest.fail("the server kept the connection of a client that reads nothing")
    assert server.memory_info().rss - rss_before < 300 << 20
    frames = ws_frames(read_until_closed(sock, 30))
    code = close_code(frames)
    assert code in (None, 1008), code  # the close frame may be lost behind the unread data
    assert sent > 0
