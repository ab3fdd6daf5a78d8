"""Fetch audio from a URL into a temporary file, with a size cap, timeouts and an SSRF guard.

URLs whose host resolves to a loopback, private, link-local or otherwise non-public address are
refused unless the operator's allowlist names the host or a range holding the address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import tempfile
from urllib.parse import urlsplit

import httpx

from audio_service.errors import InvalidRequestError, PayloadTooLargeError

MAX_REDIRECTS = 5


def looks_like_url(value: str | bytes) -> bool:
    if isinstance(value, bytes):
        if len(value) > 4096:
            return False
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return False
    value = value.strip()
    return value.startswith(("http://", "https://")) and "\n" not in value and " " not in value


def _allowed(host: str, addresses: list[str], allowlist: list[str]) -> bool:
    if host in allowlist:
        return True
    nets = []
    for entry in allowlist:
        try:
            nets.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue
    ips = [ipaddress.ip_address(a) for a in addresses]
    if all(ip.is_global for ip in ips):
        return True
    return all(any(ip in net for net in nets) for ip in ips)


async def check_url(url: str, allowlist: list[str]) -> None:
    """Raise :class:`InvalidRequestError` if ``url`` is malformed or points at a forbidden address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequestError(f"Unsupported audio URL {url!r}: use http(s)://host/...", param="file")
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise InvalidRequestError(f"Cannot resolve the audio URL's host {host!r}.", param="file") from exc
    addresses = sorted({info[4][0] for info in infos})
    if not _allowed(host, addresses, allowlist):
        raise InvalidRequestError(
            f"The audio URL's host {host!r} resolves to a non-public address; "
            "the server's url_fetch_allowlist does not allow it.",
            param="file",
            code="url_not_allowed",
        )


async def fetch_to_tempfile(url: str, *, max_bytes: int, timeout_s: float, allowlist: list[str]) -> tempfile.SpooledTemporaryFile:
    """Download ``url`` (following up to 5 redirects, each re-checked) into a spooled temp file."""
    timeout = httpx.Timeout(timeout_s)
    out = tempfile.SpooledTemporaryFile(max_size=8 << 20)
    try:
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            for _ in range(MAX_REDIRECTS + 1):
                await check_url(url, allowlist)
                async with client.stream("GET", url) as resp:
                    if resp.is_redirect and "location" in resp.headers:
                        url = str(resp.url.join(resp.headers["location"]))
                        continue
                    if resp.status_code >= 400:
                        raise InvalidRequestError(
                            f"Fetching the audio URL failed with HTTP {resp.status_code}.", param="file", code="url_fetch_failed"
                        )
                    declared = int(resp.headers.get("content-length") or 0)
                    if declared > max_bytes:
                        raise PayloadTooLargeError(f"The audio at the URL is larger than {max_bytes} bytes.", param="file")
                    size = 0
                    async for chunk in resp.aiter_bytes(1 << 16):
                        size += len(chunk)
                        if size > max_bytes:
                            raise PayloadTooLargeError(f"The audio at the URL is larger than {max_bytes} bytes.", param="file")
                        out.write(chunk)
                    out.seek(0)
                    return out
            raise InvalidRequestError("Too many redirects fetching the audio URL.", param="file", code="url_fetch_failed")
    except httpx.HTTPError as exc:
        out.close()
        raise InvalidRequestError(f"Fetching the audio URL failed: {exc}", param="file", code="url_fetch_failed") from exc
    except BaseException:
        out.close()
        raise
