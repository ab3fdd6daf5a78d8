from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.audio_utils import JFK, load_16k
from tests.server import ServerProcess


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
