"""Raw-socket HTTP and WebSocket clients for slow, stuck and hostile client tests (no library pacing)."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import time

import numpy as np


def connect(port: int, rcvbuf: int | None = None, timeout: float = 30.0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:  # before connect, so the TCP window is small from the start
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect(("127.0.0.1", port))
    return sock


def read_until_closed(sock: socket.socket, timeout: float = 30.0) -> bytes:
    """Everything the server sends until it closes the connection (or ``timeout`` passes)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def read_response(sock: socket.socket) -> bytes:
    """One whole HTTP/1.1 response with a Content-Length, leaving the connection open."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def parse_http_response(raw: bytes) -> tuple[int, dict[str, str], dict]:
    """(status, headers, JSON body) of one HTTP/1.1 response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, json.loads(body[: int(headers.get("content-length", len(body)))])


def trickle_until_answer(sock: socket.socket, data: bytes, interval_s: float, limit_s: float) -> tuple[bytes, float]:
    """Send ``data`` one byte per ``interval_s`` (cycling) until the server answers; (answer, seconds)."""
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < limit_s:
        try:
            sock.send(data[i % len(data) : i % len(data) + 1])
        except OSError:
            break  # the server closed: its answer is already in our receive buffer
        i += 1
        sock.settimeout(interval_s)  # the pace of the trickle, and the poll for an answer at once
        try:
            first = sock.recv(65536)
        except TimeoutError:
            continue
        return first + read_until_closed(sock, 10), time.monotonic() - start
    return read_until_closed(sock, 10), time.monotonic() - start


# --- WebSocket (RFC 6455), client side --------------------------------------------------------------


def ws_handshake(sock: socket.socket, path: str) -> None:
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError("closed during the WebSocket handshake")
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head


def ws_frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (FIN set)."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    mask = os.urandom(4)
    masked = np.frombuffer(payload, np.uint8) ^ np.resize(np.frombuffer(mask, np.uint8), n)
    return header + mask + masked.tobytes()


def ws_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Parse the (unmasked) server frames in ``data``; a truncated last frame is dropped."""
    frames, i = [], 0
    while i + 2 <= len(data):
        opcode, n = data[i] & 0x0F, data[i + 1] & 0x7F
        i += 2
        if n == 126:
            n, i = struct.unpack("!H", data[i : i + 2])[0], i + 2
        elif n == 127:
            n, i = struct.unpack("!Q", data[i : i + 8])[0], i + 8
        if i + n > len(data):
            break
        frames.append((opcode, data[i : i + n]))
        i += n
    return frames


def close_code(frames: list[tuple[int, bytes]]) -> int | None:
    """The code of the server's close frame, if one arrived."""
    for opcode, payload in frames:
        if opcode == 0x8:
            return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
    return None
