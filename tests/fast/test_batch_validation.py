"""Every bad batch input gets a 4xx with the OpenAI error body and the app keeps serving: the request
validation, the API keys, the upload limit and the waiting room, in-process on the fake backend."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tests.audio_utils import write_wav
from tests.fast.fake_backend import expected_text
from tests.http_utils import TRANSCRIPTIONS, TRANSLATIONS, assert_error, jfk_file, post
from tests.ops_utils import scrape, value, wait_for

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
    ("too-many-keyterms", "jfk", {"keyterms": ",".join(f"t{i}" for i in range(101))}, 400, "keyterms", None),
    ("keyterms-too-long", "jfk", {"keyterms[]": ["x" * 300, "y" * 300]}, 400, "keyterms", None),
    ("hotwords-too-long", "jfk", {"hotwords": "x" * 501}, 400, "hotwords", None),
    ("keyterms-and-hotwords", "jfk", {"keyterms": "Quilter", "hotwords": "Quilter"}, 400, "keyterms", None),
    (
        "multichannel-diarize",
        "jfk",
        {"multichannel": "true", "diarize": "true", "response_format": "verbose_json", "timestamp_granularities": "word"},
        400,
        "multichannel",
        None,
    ),
    ("multichannel-stream", "jfk", {"multichannel": "true", "stream": "true"}, 400, "multichannel", None),
    ("bad-multichannel", "jfk", {"multichannel": "both"}, 400, "multichannel", None),
]


def assert_healthy(client, jfk, headers=None) -> None:
    """A normal request right after the bad one still succeeds, with the text of the whole file."""
    r = post(client, jfk_file(), {"response_format": "json"}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["text"] == expected_text(jfk)


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_request_then_healthy(client, fake, jfk, case) -> None:
    _, file, data, status, param, code = case
    r = post(client, jfk_file() if file == "jfk" else file, data)
    assert_error(r, status, param, code)
    assert_healthy(client, jfk)


def test_bad_requests_never_reach_the_model(app) -> None:
    """Validation fails before any decoding: the fake counts the model calls that went through."""
    for _, file, data, status, _param, _code in BAD_REQUESTS:
        assert post(app.client, jfk_file() if file == "jfk" else file, data).status_code == status
    assert app.fake.batch_gate.passed == 0


def test_not_multipart(client, jfk) -> None:
    r = client.post(TRANSCRIPTIONS, json={"file": "x"})
    assert_error(r, 400, "file")
    assert_healthy(client, jfk)


def test_english_only_model_cannot_translate(client, jfk) -> None:
    r = post(client, jfk_file(), {"model": "whisper-tiny.en"}, path=TRANSLATIONS)
    assert_error(r, 400, "model")
    assert_healthy(client, jfk)


def test_unknown_route_is_json(client) -> None:
    assert_error(client.get("/v1/audio/nothing"), 404)


def test_loopback_url_refused_without_allowlist(make_app, jfk) -> None:
    client = make_app().client  # no server.url_fetch_allowlist
    r = post(client, data={"file": "http://127.0.0.1:9/health"})
    assert_error(r, 400, "file", "url_not_allowed")
    assert_healthy(client, jfk)


STRICT = dict(
    auth={"api_keys": ["secret-1", "secret-2"]},
    server={"max_upload_bytes": 2_000_000},
    batch={"workers": 1, "max_queued_requests": 0, "retry_after_s": 7},
)
AUTH = {"Authorization": "Bearer secret-2"}


@pytest.fixture
def strict(make_app):
    return make_app(**STRICT)


def test_api_keys(strict, jfk) -> None:
    client = strict.client
    assert_error(post(client, jfk_file()), 401, code="invalid_api_key")
    assert_error(post(client, jfk_file(), headers={"Authorization": "Bearer wrong"}), 401)
    assert_error(client.get("/v1/models", headers={"Authorization": "nope"}), 401)
    assert client.get("/health").status_code == 200  # liveness stays open
    assert_healthy(client, jfk, headers=AUTH)
    assert_healthy(client, jfk, headers={"Authorization": "secret-1"})  # the reference's raw form


@pytest.mark.parametrize("seconds", [70, 140], ids=["over-limit-after-parse", "over-limit-by-content-length"])
def test_file_too_large(strict, jfk, tmp_path, seconds: int) -> None:
    # 16 kHz PCM16: 70 s = 2.24 MB (just over the 2 MB limit), 140 s = 4.5 MB (refused before reading)
    wav = write_wav(tmp_path / "big.wav", np.resize(jfk, seconds * 16000))
    r = post(strict.client, ("big.wav", wav.read_bytes(), "audio/wav"), headers=AUTH)
    assert_error(r, 413, "file", "file_too_large")
    assert_healthy(strict.client, jfk, headers=AUTH)


def in_background(fn) -> tuple[threading.Thread, dict]:
    """Run ``fn()`` on a thread; its result lands in the returned dict under "r"."""
    out: dict = {}
    thread = threading.Thread(target=lambda: out.setdefault("r", fn()), daemon=True)
    thread.start()
    return thread, out


def test_queue_full_gives_429_with_retry_after(strict, jfk) -> None:
    strict.fake.batch_gate.close()  # the first request holds the only worker until the gate opens
    thread, first = in_background(lambda: post(strict.client, jfk_file(), headers=AUTH))
    strict.fake.batch_gate.wait_for_waiting(1)
    busy = post(strict.client, jfk_file(), headers=AUTH)
    assert_error(busy, 429, code="server_busy")
    assert busy.headers["retry-after"] == "7"
    strict.fake.batch_gate.open()
    thread.join(30)
    assert first["r"].status_code == 200
    assert_healthy(strict.client, jfk, headers=AUTH)


def test_bad_files_are_refused_while_the_worker_is_busy(make_app, jfk) -> None:
    """An empty or undecodable upload gets its 400 at once, not after waiting behind a long job
    (seen in the soak: bad requests timed out behind a diarized upload loading its models)."""
    app = make_app(batch={"workers": 1})
    app.fake.batch_gate.close()
    thread, long_job = in_background(lambda: post(app.client, jfk_file()))
    app.fake.batch_gate.wait_for_waiting(1)
    assert value(scrape(app.client), "audio_service_busy_workers") == 1  # the metric sees the held worker
    assert_error(post(app.client, ("empty.wav", b"", "audio/wav")), 400, "file")
    assert_error(post(app.client, ("noise.wav", bytes(range(256)) * 40, "audio/wav")), 400, "file")
    assert thread.is_alive() and app.fake.batch_gate.waiting == 1  # still held: the 400s did not wait for it
    app.fake.batch_gate.open()
    thread.join(30)
    assert long_job["r"].status_code == 200
    wait_for(lambda: value(scrape(app.client), "audio_service_busy_workers") == 0, 10, "the worker to be free")


def test_the_demo_page_and_its_scripts_are_served(client) -> None:
    page = client.get("/demo/")
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert client.get("/demo/live.js").headers["content-type"].startswith("text/javascript")
    assert_error(client.get("/demo/nope.js"), 404)
