"""Every bad input gets a 4xx with the OpenAI error body, and the server keeps serving."""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import pytest

from tests.audio_utils import JFK, JFK_TEXT, load_16k, wer, write_wav

ENDPOINT = "/v1/audio/transcriptions"


def post(srv, file=None, data=None, headers=None, path: str = ENDPOINT, **kw) -> httpx.Response:
    files = {"file": file} if file is not None else None
    return httpx.post(f"{srv.base_url}{path}", files=files, data=data or {}, headers=headers, timeout=300, **kw)


def jfk_file():
    return ("jfk.flac", JFK.read_bytes(), "audio/flac")


def assert_error(r: httpx.Response, status: int, param: str | None = None, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["message"] and isinstance(err["message"], str)
    if param is not None:
        assert err["param"] == param, err
    if code is not None:
        assert err["code"] == code, err
    return err


def assert_healthy(srv, headers=None) -> None:
    """A normal request right after the bad one still succeeds."""
    r = post(srv, jfk_file(), {"response_format": "json"}, headers=headers)
    assert r.status_code == 200, r.text
    assert wer(JFK_TEXT, r.json()["text"]) <= 0.10


BAD_REQUESTS = [
    # (id, file, form data, status, param, code)
    ("missing-file", None, {"model": "whisper-1"}, 400, "file", "missing_file"),
    ("empty-file", ("a.wav", b"", "audio/wav"), {}, 400, "file", "invalid_audio"),
    (
        "undecodable",
        ("a.mp3", bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8)), "audio/mpeg"),
        {},
        400,
        "file",
        "invalid_audio",
    ),
    ("not-audio", ("notes.txt", b"these are meeting notes, not audio\n" * 200, "text/plain"), {}, 400, "file", "invalid_audio"),
    ("unknown-model", "jfk", {"model": "whisper-99"}, 404, "model", "model_not_found"),
    ("bad-format", "jfk", {"response_format": "xml"}, 400, "response_format", None),
    ("bad-temperature", "jfk", {"temperature": "hot"}, 400, "temperature", None),
    ("temperature-range", "jfk", {"temperature": "0.0,1.5"}, 400, "temperature", None),
    ("bad-language", "jfk", {"language": "klingon"}, 400, "language", None),
    (
        "bad-granularity",
        "jfk",
        {"response_format": "verbose_json", "timestamp_granularities[]": "char"},
        400,
        "timestamp_granularities",
        None,
    ),
    ("word-needs-verbose", "jfk", {"timestamp_granularities": "word"}, 400, "timestamp_granularities", None),
    ("diarize-needs-verbose", "jfk", {"diarize": "true"}, 400, "diarize", None),
    ("speakers-need-diarize", "jfk", {"min_speakers": "2"}, 400, "min_speakers", None),
    (
        "min-over-max",
        "jfk",
        {
            "diarize": "true",
            "response_format": "verbose_json",
            "timestamp_granularities": "word",
            "min_speakers": "3",
            "max_speakers": "2",
        },
        400,
        "min_speakers",
        None,
    ),
    (
        "non-numeric-speakers",
        "jfk",
        {"diarize": "true", "response_format": "verbose_json", "timestamp_granularities": "word", "max_speakers": "many"},
        400,
        "max_speakers",
        None,
    ),
    ("bad-preprocessing", "jfk", {"preprocessing": "louder"}, 400, "preprocessing", None),
    ("bad-clip-len", "jfk", {"max_clip_len": "120"}, 400, "max_clip_len", None),
    # found by the HTTP fuzzer: 1e-300 split the speech into endless pieces until the kernel killed the server
    ("tiny-clip-len", "jfk", {"max_clip_len": "1e-300"}, 400, "max_clip_len", None),
    ("bad-bool", "jfk", {"skip_vad": "perhaps"}, 400, "skip_vad", None),
    ("unknown-vad", "jfk", {"vad_model": "webrtc"}, 400, "vad_model", None),
    ("unknown-aligner", "jfk", {"alignment_model": "nemo"}, 400, "alignment_model", None),
    ("file-not-url", None, {"file": "just some text"}, 400, "file", None),
]


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_request_then_healthy(server, case) -> None:
    _, file, data, status, param, code = case
    r = post(server, jfk_file() if file == "jfk" else file, data)
    assert_error(r, status, param, code)
    assert_healthy(server)


def test_not_multipart(server) -> None:
    r = httpx.post(f"{server.base_url}{ENDPOINT}", json={"file": "x"}, timeout=30)
    assert_error(r, 400, "file")
    assert_healthy(server)


def test_english_only_model_cannot_translate(server) -> None:
    r = post(server, jfk_file(), {"model": "whisper-tiny.en"}, path="/v1/audio/translations")
    assert_error(r, 400, "model")
    assert_healthy(server)


def test_unknown_route_is_json(server) -> None:
    r = httpx.get(f"{server.base_url}/v1/audio/nothing", timeout=10)
    assert_error(r, 404)


def test_loopback_url_refused_without_allowlist(make_server) -> None:
    srv = make_server()  # no url_fetch_allowlist
    r = post(srv, data={"file": f"{srv.base_url}/health"})
    assert_error(r, 400, "file", "url_not_allowed")
    assert_healthy(srv)


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory):
    from tests.server import ServerProcess

    log = tmp_path_factory.mktemp("strict") / "server.log"
    with ServerProcess(
        log_path=log,
        api_keys=["secret-1", "secret-2"],
        max_upload_bytes=2_000_000,
        inference_workers=1,
        max_queued_requests=0,
        retry_after_s=7,
    ) as srv:
        yield srv


AUTH = {"Authorization": "Bearer secret-2"}


def test_api_keys(strict_server) -> None:
    assert_error(post(strict_server, jfk_file()), 401, code="invalid_api_key")
    assert_error(post(strict_server, jfk_file(), headers={"Authorization": "Bearer wrong"}), 401)
    assert_error(httpx.get(f"{strict_server.base_url}/v1/models", headers={"Authorization": "nope"}), 401)
    assert httpx.get(f"{strict_server.base_url}/health").status_code == 200  # liveness stays open
    assert_healthy(strict_server, headers=AUTH)
    assert_healthy(strict_server, headers={"Authorization": "secret-1"})  # the reference's raw form


@pytest.mark.parametrize("seconds", [70, 140], ids=["over-limit-after-parse", "over-limit-by-content-length"])
def test_file_too_large(strict_server, tmp_path, seconds: int) -> None:
    # 16 kHz PCM16: 70 s = 2.24 MB (just over the 2 MB limit), 140 s = 4.5 MB (refused before reading)
    speech = load_16k(JFK)
    wav = write_wav(tmp_path / "big.wav", np.resize(speech, seconds * 16000))
    r = post(strict_server, ("big.wav", wav.read_bytes(), "audio/wav"), headers=AUTH)
    assert_error(r, 413, "file", "file_too_large")
    assert_healthy(strict_server, headers=AUTH)


def test_queue_full_gives_429_with_retry_after(strict_server, tmp_path) -> None:
    speech = load_16k(JFK)
    wav = write_wav(tmp_path / "long.wav", np.tile(speech, 5)).read_bytes()  # 55 s, under the size limit
    first: dict = {}
    t = threading.Thread(target=lambda: first.setdefault("r", post(strict_server, ("long.wav", wav, "audio/wav"), headers=AUTH)))
    t.start()
    time.sleep(0.5)  # let the long request take the only worker first
    try:
        busy = None
        for _ in range(50):  # until the first request occupies the only worker
            r = post(strict_server, jfk_file(), headers=AUTH)
            if r.status_code == 429:
                busy = r
                break
        assert busy is not None, "expected a 429 while the only worker was busy"
        assert_error(busy, 429, code="server_busy")
        assert busy.headers["retry-after"] == "7"
    finally:
        t.join()
    assert first["r"].status_code == 200
    assert_healthy(strict_server, headers=AUTH)


def test_bad_files_are_refused_while_the_worker_is_busy(server, tmp_path) -> None:
    """An empty or undecodable upload gets its 400 at once, not after waiting behind a long job
    (seen in the soak: bad requests timed out behind a diarized upload loading its models)."""
    from prometheus_client.parser import text_string_to_metric_families

    wav = write_wav(tmp_path / "long.wav", np.tile(load_16k(JFK), 6)).read_bytes()  # 66 s
    long_job: dict = {}
    t = threading.Thread(target=lambda: long_job.setdefault("r", post(server, ("long.wav", wav, "audio/wav"))))
    t.start()

    def busy() -> float:
        families = text_string_to_metric_families(httpx.get(f"{server.base_url}/metrics", timeout=10).text)
        return sum(s.value for f in families if f.name == "audio_service_busy_workers" for s in f.samples)

    deadline = time.monotonic() + 60
    while busy() < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        assert busy() >= 1, "the long request never took the worker"
        assert_error(post(server, ("empty.wav", b"", "audio/wav")), 400, "file")
        assert_error(post(server, ("noise.wav", bytes(range(256)) * 40, "audio/wav")), 400, "file")
        assert t.is_alive(), "the long request finished first: the test proved nothing"
    finally:
        t.join()
    assert long_job["r"].status_code == 200
