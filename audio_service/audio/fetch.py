"""Fetch audio from a URL into a temporary file, with a size cap, one total deadline and an SSRF guard.

URLs whose host resolves to a loopback, private, link-local or otherwise non-public address are
refused unless the operator's allowlist names the host or a range holding the address.

The guard lives in the network backend: every TCP connection resolves its host once, checks the
addresses and connects to exactly those addresses (the URL's host still goes in the Host header and
in TLS SNI, as httpcore takes both from the URL, not from the socket). A second lookup - the DNS
rebinding trick of answering a public address to the check and a loopback one to the connect - thus
never happens. Redirects are followed here, hop by hop, each hop connecting through the same guard.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import tempfile
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpcore
import httpx

from audio_service.errors import InvalidRequestError, PayloadTooLargeError

MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

# (host, port) -> the addresses it resolves to; injectable so unit tests can play a rebinding DNS.
Resolver = Callable[[str, int], Awaitable[list[str]]]


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


def _canonical(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address as checked: an IPv4-mapped IPv6 address (::ffff:127.0.0.1) is its IPv4 address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _allowed(host: str, addresses: list[str], allowlist: list[str]) -> bool:
    if host in allowlist:
        return True
    nets = []
    for entry in allowlist:
        try:
            nets.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue
    ips = [_canonical(a) for a in addresses]
    if all(ip.is_global for ip in ips):
        return True
    return all(any(ip in net for net in nets) for ip in ips)


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (in resolver order, without repeats).

    Calls :func:`socket.getaddrinfo` in a thread (as asyncio's loop does) rather than the loop's own
    lookup, so that every event loop (uvloop included) resolves through the same, patchable function.
    """
    infos = await asyncio.to_thread(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to addresses that passed the SSRF check."""

    def __init__(
        self, allowlist: list[str], resolver: Resolver = system_resolve, param: str = "file", what: str = "audio URL"
    ) -> None:
        self.allowlist = allowlist
        self.resolver = resolver
        self.param = param  # the request field its errors name (callbacks are checked by the same guard)
        self.what = what
        self._inner = httpcore.AnyIOBackend()

    async def checked_addresses(self, host: str, port: int) -> list[str]:
        """Resolve ``host`` once; raise :class:`InvalidRequestError` if any address is forbidden."""
        try:
            addresses = await self.resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise InvalidRequestError(f"Cannot resolve the {self.what}'s host {host!r}.", param=self.param) from exc
        if not addresses:
            raise InvalidRequestError(f"Cannot resolve the {self.what}'s host {host!r}.", param=self.param)
        if not _allowed(host, addresses, self.allowlist):
            raise InvalidRequestError(
                f"The {self.what}'s host {host!r} resolves to a non-public address; "
                "the server's setting server.url_fetch_allowlist does not allow it.",
                param=self.param,
                code="url_not_allowed",
            )
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        failure: Exception | None = None
        for address in await self.checked_addresses(host, port):
            try:  # the checked address itself, never the name again
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None):
        raise InvalidRequestError(f"The {self.what} cannot name a unix socket.", param=self.param)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _parse(url: str, base: httpx.URL | None = None) -> httpx.URL:
    """The URL (a redirect's ``Location`` resolved against ``base``), if it is a usable http(s) URL."""
    try:
        parsed = base.join(url) if base is not None else httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise InvalidRequestError(f"Invalid audio URL: {exc}", param="file") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidRequestError(f"Unsupported audio URL {str(parsed)[:200]!r}: use http(s)://host/...", param="file")
    return parsed


async def fetch_to_tempfile(
    url: str, *, max_bytes: int, timeout_s: float, allowlist: list[str], resolver: Resolver = system_resolve
) -> tempfile.SpooledTemporaryFile:
    """Download ``url`` into a spooled temp file; ``timeout_s`` bounds the whole download, redirects included."""
    out = tempfile.SpooledTemporaryFile(max_size=8 << 20)
    try:
        await asyncio.wait_for(_download(url, out, max_bytes, timeout_s, GuardedBackend(allowlist, resolver)), timeout_s)
    except asyncio.TimeoutError:
        out.close()
        raise InvalidRequestError(
            f"Fetching the audio URL took longer than {timeout_s:g} s (server.url_fetch_timeout_s).",
            param="file",
            code="url_fetch_timeout",
        ) from None
    except (httpcore.TimeoutException, httpcore.ProtocolError, httpcore.NetworkError, httpcore.UnsupportedProtocol) as exc:
        out.close()
        raise InvalidRequestError(
            f"Fetching the audio URL failed: {exc or type(exc).__name__}", param="file", code="url_fetch_failed"
        ) from exc
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return out


async def _download(url: str, out: Any, max_bytes: int, timeout_s: float, backend: GuardedBackend) -> None:
    current = _parse(url)
    timeouts = {"connect": timeout_s, "read": timeout_s, "write": timeout_s, "pool": timeout_s}
    async with httpcore.AsyncConnectionPool(network_backend=backend, max_connections=2, retries=0) as pool:
        for _ in range(MAX_REDIRECTS + 1):
            target = httpcore.URL(scheme=current.raw_scheme, host=current.raw_host, port=current.port, target=current.raw_path)
            request_headers = [(b"Host", current.netloc), (b"Accept", b"*/*"), (b"User-Agent", b"audio-service")]
            async with pool.stream("GET", target, headers=request_headers, extensions={"timeout": timeouts}) as resp:
                headers = {k.lower(): v for k, v in resp.headers}
                if resp.status in REDIRECT_STATUSES and b"location" in headers:
                    # Re-checked on the next hop's connect, like the first URL.
                    current = _parse(headers[b"location"].decode("latin-1"), base=current)
                    continue
                if resp.status >= 400:
                    raise InvalidRequestError(
                        f"Fetching the audio URL failed with HTTP {resp.status}.", param="file", code="url_fetch_failed"
                    )
                declared = headers.get(b"content-length", b"")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise PayloadTooLargeError(f"The audio at the URL is larger than {max_bytes} bytes.", param="file")
                size = 0
                async for chunk in resp.aiter_stream():
                    size += len(chunk)
                    if size > max_bytes:
                        raise PayloadTooLargeError(f"The audio at the URL is larger than {max_bytes} bytes.", param="file")
                    out.write(chunk)
                return
    raise InvalidRequestError("Too many redirects fetching the audio URL.", param="file", code="url_fetch_failed")
