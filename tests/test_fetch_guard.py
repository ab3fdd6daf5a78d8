"""The URL-fetch SSRF guard, the size cap and the total deadline: in-process against real loopback
origins (a scripted resolver plays a DNS-rebinding server), then end to end through the real server."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from audio_service.audio.fetch import fetch_to_tempfile
from audio_service.errors import InvalidRequestError, PayloadTooLargeError
from tests.audio_utils import JFK, JFK_TEXT, TWO_SPEAKERS, wer
from tests.origin_server import Origin, Route

LEGIT = "127.0.0.2"  # an allowlisted loopback alias: the "public" side of each attack
INTERNAL = "127.0.0.1"  # the address the attacker wants reached: never allowlisted here
FORBIDDEN_SPELLINGS = ["[::1]", "[::ffff:127.0.0.1]", "2130706433", "0177.0.0.1", "0x7f.1"]


def rebinding_resolver(calls: list[str]):
    """First answer: the allowed address; every later answer: the internal one (DNS rebinding)."""

    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return [LEGIT] if len(calls) == 1 else [INTERNAL]

    return resolve


def fetch(url: str, *, max_bytes: int = 10 << 20, timeout_s: float = 10.0, allowlist=(LEGIT,), **kw) -> bytes:
    async def go() -> bytes:
        with await fetch_to_tempfile(url, max_bytes=max_bytes, timeout_s=timeout_s, allowlist=list(allowlist), **kw) as f:
            return f.read()

    return asyncio.run(go())


@pytest.fixture
def origins():
    """The legit origin on 127.0.0.2 and an internal one on 127.0.0.1, on the same port."""
    with Origin(host=LEGIT) as legit, Origin(host=INTERNAL, port=legit.port) as internal:
        legit.routes["/audio"] = Route(body=b"legit audio")
        internal.routes["/audio"] = Route(body=b"internal secret")
        yield legit, internal


def test_rebinding_host_is_connected_at_the_checked_address(origins) -> None:
    legit, internal = origins
    calls: list[str] = []
    body = fetch(f"http://rebind.test:{legit.port}/audio", resolver=rebinding_resolver(calls))
    assert body == b"legit audio"
    assert calls == ["rebind.test"]  # resolved once: no second lookup to rebind
    assert internal.hits == []
    assert legit.hits == [("/audio", f"rebind.test:{legit.port}")]  # the URL's host in the Host header


def test_redirect_to_loopback_is_refused(origins) -> None:
    legit, internal = origins
    legit.routes["/go"] = Route(status=302, location=internal.url("/audio"))
    with pytest.raises(InvalidRequestError) as err:
        fetch(legit.url("/go"))
    assert err.value.code == "url_not_allowed"
    assert internal.hits == []


def test_redirects_are_followed_and_bounded(origins) -> None:
    legit, _ = origins
    legit.routes["/hop"] = Route(status=307, location="/audio")
    assert fetch(legit.url("/hop")) == b"legit audio"
    legit.routes["/loop"] = Route(status=302, location="/loop")
    with pytest.raises(InvalidRequestError, match="redirects"):
        fetch(legit.url("/loop"))
    for location in ("file:///etc/passwd", "http://[::1", "gopher://127.0.0.2/"):
        legit.routes["/bad"] = Route(status=302, location=location)
        with pytest.raises(InvalidRequestError):
            fetch(legit.url("/bad"))


@pytest.mark.parametrize("host", FORBIDDEN_SPELLINGS)
def test_loopback_spellings_are_refused(origins, host: str) -> None:
    _, internal = origins
    with pytest.raises(InvalidRequestError):
        fetch(f"http://{host}:{internal.port}/audio")
    assert internal.hits == []


def test_body_over_the_cap_is_refused(origins) -> None:
    legit, _ = origins
    legit.routes["/big"] = Route(body=b"x" * 5000)
    legit.routes["/big-chunked"] = Route(body=b"x" * 5000, content_length=False)
    for path in ("/big", "/big-chunked"):
        with pytest.raises(PayloadTooLargeError):
            fetch(legit.url(path), max_bytes=1000)


def test_trickling_origin_is_bounded_by_the_total_timeout(origins) -> None:
    legit, _ = origins
    legit.routes["/slow"] = Route(body=b"x" * 60, trickle_s=0.5)  # every read is fast; the whole is 30 s
    start = time.monotonic()
    with pytest.raises(InvalidRequestError) as err:
        fetch(legit.url("/slow"), timeout_s=2.0)
    assert err.value.code == "url_fetch_timeout"
    assert time.monotonic() - start < 15  # generous: 2 s plus scheduling on a loaded machine


# --- end to end: the real server ------------------------------------------------------------------

SITECUSTOMIZE = '''
import socket
_real = socket.getaddrinfo
_calls = []

def getaddrinfo(host, port, *args, **kwargs):
    """A DNS-rebinding name: the allowed address first, the internal one afterwards."""
    if host in ("rebind.test", b"rebind.test"):
        _calls.append(host)
        return _real("127.0.0.2" if len(_calls) == 1 else "127.0.0.1", port, *args, **kwargs)
    return _real(host, port, *args, **kwargs)

socket.getaddrinfo = getaddrinfo
'''


@pytest.fixture(scope="module")
def fetch_server(tmp_path_factory):
    from tests.server import ServerProcess

    hook = tmp_path_factory.mktemp("rebind_dns")
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    settings = dict(
        server={"url_fetch_allowlist": [LEGIT], "url_fetch_timeout_s": 3.0, "max_upload_bytes": 1_500_000},
        models={"preload": ["whisper-tiny.en"], "default": "whisper-tiny.en"},
    )
    log = tmp_path_factory.mktemp("fetch_server") / "server.log"
    with ServerProcess(log_path=log, extra_env={"PYTHONPATH": str(hook)}, **settings) as srv:
        yield srv


@pytest.fixture
def real_origins():
    with Origin(host=LEGIT) as legit, Origin(host=INTERNAL, port=legit.port) as internal:
        legit.routes["/audio"] = Route(body=Path(JFK).read_bytes())
        internal.routes["/audio"] = Route(body=Path(TWO_SPEAKERS).read_bytes())
        legit.routes["/go"] = Route(status=302, location=internal.url("/audio"))
        legit.routes["/big"] = Route(body=b"\0" * 2_000_000, content_length=False)
        legit.routes["/slow"] = Route(body=b"x" * 60, trickle_s=0.5)
        yield legit, internal


def transcribe_url(srv, url: str) -> httpx.Response:
    return httpx.post(f"{srv.base_url}/v1/audio/transcriptions", data={"file": url, "language": "en"}, timeout=120)


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> None:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["param"] == "file"
    if code:
        assert error["code"] == code


def test_server_fetches_a_rebinding_host_from_the_checked_address(fetch_server, real_origins) -> None:
    legit, internal = real_origins
    r = transcribe_url(fetch_server, f"http://rebind.test:{legit.port}/audio")
    assert r.status_code == 200, r.text
    assert wer(JFK_TEXT, r.json()["text"]) < 0.2
    assert internal.hits == []


def test_server_refuses_hostile_urls(fetch_server, real_origins) -> None:
    legit, internal = real_origins
    assert_error(transcribe_url(fetch_server, legit.url("/go")), 400, "url_not_allowed")
    for host in FORBIDDEN_SPELLINGS:
        assert_error(transcribe_url(fetch_server, f"http://{host}:{internal.port}/audio"), 400)
    assert internal.hits == []
    assert_error(transcribe_url(fetch_server, legit.url("/big")), 413, "file_too_large")
    start = time.monotonic()
    assert_error(transcribe_url(fetch_server, legit.url("/slow")), 400, "url_fetch_timeout")
    assert time.monotonic() - start < 20
    assert httpx.get(f"{fetch_server.base_url}/health", timeout=10).status_code == 200
