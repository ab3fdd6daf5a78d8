"""The in-process layer: the app built by ``create_app`` on a fake decoding backend, called through
starlette's ``TestClient`` (HTTP and WebSocket) with no server process and no model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from audio_service.app import create_app
from audio_service.settings import Settings
from tests.fast.fake_backend import FakeBackend
from tests.ops_utils import wait_for


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:  # `pytest -m fast` selects this layer too
        if "tests/fast/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.fast)


class App:
    """One app on a fake backend: its client (lifespan started), its fake and its settings."""

    def __init__(self, fake: FakeBackend, settings: Settings) -> None:
        self.fake = fake
        self.settings = settings
        self.app = create_app(settings, backend=fake.backend())
        self.client = TestClient(self.app, raise_server_exceptions=False)
        self.services = self.app.state.services

    def __enter__(self) -> TestClient:
        return self.client.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.fake.batch_gate.open()  # never leave a held call behind
        self.fake.stream_gate.open()
        self.client.__exit__(*exc)


def settings(**values: object) -> Settings:
    """Settings from keyword values alone: the test's environment (AUDIO_SERVICE_*) is ignored."""
    models = {"preload": ["whisper-base"], **values.pop("models", {})}  # type: ignore[dict-item]
    return Settings.model_validate({"models": models, **values})


@pytest.fixture
def make_app() -> Iterator:
    """``make_app(**settings) -> App``, started; stopped after the test."""
    started: list[App] = []

    def _make(fake: FakeBackend | None = None, **values: object) -> App:
        app = App(fake or FakeBackend(), settings(**values))
        app.__enter__()
        started.append(app)
        wait_for(lambda: app.client.get("/ready").status_code == 200, 30, "/ready")  # the preload ran
        return app

    yield _make
    for app in reversed(started):
        app.__exit__(None, None, None)


@pytest.fixture
def fake() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def app(make_app) -> App:
    """An app with default settings (URL inputs allowed from loopback)."""
    return make_app(server={"url_fetch_allowlist": ["127.0.0.1"]})


@pytest.fixture
def client(app: App) -> TestClient:
    return app.client
