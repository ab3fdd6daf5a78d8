from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.audio_utils import JFK, load_16k
from tests.server import ServerProcess

# `make test` spreads whole modules over 2 workers (pytest-xdist --dist loadfile), handing them out in
# collection order: the longest modules go first, so that no long one starts last and runs alone.
LONGEST_FIRST = [
    "test_ray",
    "test_diarization",
    "test_client_python",
    "test_accuracy",
    "test_demo_browser",
    "test_diarization_load",
    "test_batch_api",
    "test_real_meetings",
    "test_ops",
    "test_stream_events",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.stem
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within a module and among the others stays


@pytest.fixture(scope="session")
def jfk() -> np.ndarray:
    """The 11 s jfk recording, 16 kHz float32 samples (decoded once per session)."""
    return load_16k(JFK)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory):
    """One real server on the default model, shared by tests that need no special settings."""
    log = tmp_path_factory.mktemp("server") / "server.log"
    with ServerProcess(log_path=log, server={"url_fetch_allowlist": ["127.0.0.1"]}) as srv:
        yield srv


# Servers with special settings, each shared by the modules that need those settings (a server start
# costs seconds: modules share one where their settings do not conflict).
KEYS = ["key-one", "key-two"]  # the keyed server's API keys
SLOW_CLIENT_TIMEOUTS = {"request_header_timeout_s": 2.0, "upload_idle_timeout_s": 2.0, "upload_timeout_s": 6.0}
SLOW_CLIENT_SEND_TIMEOUT_S = 3.0


@pytest.fixture(scope="session")
def keyed_server(tmp_path_factory: pytest.TempPathFactory):
    """API keys (KEYS), two streams per key, 32 kB frames, a 20 s stream backlog, word commits (test_streaming,
    the clients)."""
    log = tmp_path_factory.mktemp("keyed") / "server.log"
    with ServerProcess(
        log_path=log,
        auth={"api_keys": KEYS},
        quotas={"max_streams_per_key": 2},
        # the backlog limit paces a fast client (test_streaming); every other client is paced by it too, and
        # must lose nothing either
        # word commits on (off by default): test_streaming checks them on real speech
        streaming={"max_frame_bytes": 32000, "max_backlog_s": 20.0, "commit_words": True},
    ) as srv:
        srv.log = log  # type: ignore[attr-defined]
        yield srv


@pytest.fixture(scope="session")
def tiny_server(tmp_path_factory: pytest.TempPathFactory):
    """whisper-tiny.en by default, operator aliases, short slow-client timeouts and a deep waiting room
    (test_system, test_slow_clients, test_fuzz_http)."""
    log = tmp_path_factory.mktemp("tiny") / "server.log"
    with ServerProcess(
        log_path=log,
        models={
            "default": "whisper-tiny.en",
            "preload": ["whisper-tiny.en"],
            "aliases": {"whisper-v3": "whisper-tiny.en", "fast": "whisper-tiny.en"},
        },
        server=SLOW_CLIENT_TIMEOUTS,
        streaming={"send_timeout_s": SLOW_CLIENT_SEND_TIMEOUT_S},
        batch={"max_queued_requests": 64},
    ) as srv:
        srv.log = log  # type: ignore[attr-defined]
        yield srv


@pytest.fixture
def make_server(tmp_path: Path):
    """Start extra servers with specific settings; each is stopped after the test."""
    started: list[ServerProcess] = []

    def _make(**settings: object) -> ServerProcess:
        srv = ServerProcess(log_path=tmp_path / f"server{len(started)}.log", **settings).start()
        started.append(srv)
        return srv

    yield _make
    for srv in started:
        srv.stop()
