"""Settings: values that cannot work fail at load naming the field; every name maps one way to the environment
and the command line; the flat names of a single-level layout still work, with a warning."""

from __future__ import annotations

import argparse
import logging
import os

import pytest
from pydantic import ValidationError

from audio_service.cli import build_settings
from audio_service.settings import Settings, env_name, flat_names, groups


@pytest.fixture(autouse=True)
def no_outside_settings(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """Only what a test sets: no AUDIO_SERVICE_* variable of the machine, no .env file of the checkout."""
    for name in [name for name in os.environ if name.startswith("AUDIO_SERVICE_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize(
    "group, field, value",
    [
        ("server", "port", 0),
        ("batch", "beam_size", 0),
        ("batch", "workers", 0),
        ("ray", "replicas", 0),
        ("streaming", "max_batch", 0),
        ("streaming", "max_segment_s", 60.0),  # a stream's decode window holds at most 30 s of audio
        ("streaming", "vad_threshold", 1.5),
        ("streaming", "max_backlog_s", 8.0),  # a stream would stop reading before its open segment is cut
        ("quotas", "max_streams_per_key", -1),
    ],
)
def test_a_value_that_cannot_work_is_refused_at_load(group: str, field: str, value: object) -> None:
    with pytest.raises(ValidationError) as err:
        Settings.model_validate({group: {field: value}})
    assert f"{group}.{field}" in str(err.value)


def test_every_number_has_bounds() -> None:
    unbounded = [
        f"{group}.{name}"
        for group, model in groups().items()
        for name, field in model.model_fields.items()
        if field.annotation in (int, float, int | None, float | None) and not field.metadata
    ]
    assert not unbounded


def test_a_misspelt_field_fails_at_load() -> None:
    with pytest.raises(ValidationError, match="max_batchh"):
        Settings.model_validate({"streaming": {"max_batchh": 4}})


def test_the_defaults_load() -> None:
    assert Settings.model_validate({}).server.port == 8000


def test_grouped_environment_variables_and_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIO_SERVICE_STREAMING__MAX_BATCH", "3")
    monkeypatch.setenv("AUDIO_SERVICE_SERVER__PORT", "9001")
    monkeypatch.setenv("AUDIO_SERVICE_AUTH__API_KEYS", '["a"]')
    settings = build_settings(argparse.Namespace(**{"server.port": "9002", "models.aliases": '{"x": "whisper-base"}'}))
    assert settings.streaming.max_batch == 3
    assert settings.server.port == 9002  # a flag wins over the environment
    assert [k.get_secret_value() for k in settings.auth.api_keys] == ["a"]
    assert settings.models.aliases == {"x": "whisper-base"}


def test_flat_names_still_work_with_a_warning(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("AUDIO_SERVICE_STREAM_MAX_BATCH", "4")
    monkeypatch.setenv("AUDIO_SERVICE_INFERENCE_WORKERS", "2")
    monkeypatch.setenv("AUDIO_SERVICE_RAY", "true")  # named like the group: a flat field, not the group's JSON
    monkeypatch.setenv("AUDIO_SERVICE_MODELS", '{"m": "packaged:whisper-base"}')
    monkeypatch.setenv("AUDIO_SERVICE_API_KEYS", '["k"]')
    with caplog.at_level(logging.WARNING, logger="audio_service.settings"):
        settings = Settings()
    assert settings.streaming.max_batch == 4 and settings.batch.workers == 2 and settings.ray.enabled
    assert settings.models.sources == {"m": "packaged:whisper-base"}
    assert [k.get_secret_value() for k in settings.auth.api_keys] == ["k"]
    warned = caplog.text
    for new in ("STREAMING__MAX_BATCH", "BATCH__WORKERS", "RAY__ENABLED", "MODELS__SOURCES", "AUTH__API_KEYS"):
        assert f"AUDIO_SERVICE_{new}" in warned
    assert len(caplog.records) == 5  # one warning per flat name


def test_the_grouped_name_wins_over_the_flat_one(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("AUDIO_SERVICE_STREAM_MAX_BATCH", "4")
    monkeypatch.setenv("AUDIO_SERVICE_STREAMING__MAX_BATCH", "6")
    with caplog.at_level(logging.WARNING, logger="audio_service.settings"):
        assert Settings().streaming.max_batch == 6
    assert "AUDIO_SERVICE_STREAM_MAX_BATCH" in caplog.text and "AUDIO_SERVICE_STREAMING__MAX_BATCH" in caplog.text


def test_every_field_has_one_flat_name() -> None:
    table = flat_names()
    assert len(table) == sum(len(model.model_fields) for model in groups().values())  # no two fields share one
    assert table["AUDIO_SERVICE_STREAM_MAX_BATCH"] == ("streaming", "max_batch")
    assert table["AUDIO_SERVICE_RATE_LIMIT_STORAGE"] == ("quotas", "storage")
    assert table["AUDIO_SERVICE_PORT"] == ("server", "port")
    assert env_name("streaming", "max_batch") == "AUDIO_SERVICE_STREAMING__MAX_BATCH"


def test_a_dotenv_file_takes_both_kinds_of_names(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    (tmp_path / ".env").write_text(
        "AUDIO_SERVICE_STREAMING__MAX_BATCH=5\nAUDIO_SERVICE_PORT=9005\nAUDIO_SERVICE_API_KEY=a-client-variable\n"
    )
    settings = Settings()
    assert settings.streaming.max_batch == 5 and settings.server.port == 9005
