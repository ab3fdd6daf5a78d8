"""HTTP fuzzing with schemathesis against the real server's own /openapi.json: every operation,
a hundred generated requests per form; no 5xx, every 4xx carries the error body, and the server still
transcribes normally afterwards."""

from __future__ import annotations

import os

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.generation.modes import GenerationMode

from tests.audio_utils import JFK, JFK_TEXT, espeak, wer

# Generated requests per form operation (POST); the bodiless operations get fewer: their only inputs
# are a path id and a few query values. FUZZ_HTTP_EXAMPLES raises both for a longer hunt.
EXAMPLES = int(os.environ.get("FUZZ_HTTP_EXAMPLES", "100"))
BODILESS_EXAMPLES = max(1, EXAMPLES // 4)


@pytest.fixture(scope="module")
def fuzz_server(tiny_server):
    """The shared whisper-tiny.en server with a deep waiting room (tests/conftest.py)."""
    return tiny_server


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> bytes:
    """Short real speech, so that generated requests also reach decoding and the model."""
    return espeak("Hello world, this is a test.", tmp_path_factory.mktemp("fuzz_audio") / "hello.wav").read_bytes()


@pytest.fixture(scope="module")
def api_schema(fuzz_server):
    return schemathesis.openapi.from_url(f"{fuzz_server.base_url}/openapi.json")


def test_openapi_forms_are_the_parsers_models(fuzz_server) -> None:
    from audio_service.api.forms import TRANSLATION_FIELDS, TranscriptionParams
    from audio_service.api.routes.alignments import AlignmentParams

    paths = httpx.get(f"{fuzz_server.base_url}/openapi.json", timeout=30).json()["paths"]

    def form(path: str) -> dict:
        return paths[path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]

    assert set(form("/v1/audio/transcriptions")["properties"]) == {"file", *TranscriptionParams.model_fields}
    assert set(form("/v1/audio/translations")["properties"]) == {"file", *TRANSLATION_FIELDS}
    assert set(form("/v1/audio/alignments")["properties"]) == {"file", *AlignmentParams.model_fields}
    assert form("/v1/audio/alignments")["required"] == ["file", "text"]
    assert form("/v1/audio/transcriptions")["properties"]["language"]["type"] == "string"  # no null in a form


def check_response(case) -> None:
    response = case.call(timeout=120)
    assert response.status_code < 500, f"{case.method} {case.path}: {response.status_code} {response.text[:500]}"
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}, response.text
        assert isinstance(error["message"], str) and error["message"]


def test_fuzz_every_operation(api_schema, speech: bytes) -> None:
    fuzzed = []
    for result in api_schema.get_all_operations():
        operation = result.ok()

        cases = operation.as_strategy()
        form = operation.method.upper() == "POST"
        if form:  # forms: also values that break the schema (negative mode)
            cases = st.one_of(cases, operation.as_strategy(GenerationMode.NEGATIVE))

        @given(case=cases, real_audio=st.booleans())
        @settings(
            max_examples=EXAMPLES if form else BODILESS_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def fuzz(case, real_audio: bool) -> None:
            if real_audio and isinstance(case.body, dict) and "file" in case.body:
                case.body["file"] = speech  # the other fields stay generated
            check_response(case)

        fuzz()
        fuzzed.append(f"{operation.method.upper()} {operation.path}")
    assert {"POST /v1/audio/transcriptions", "POST /v1/audio/translations", "POST /v1/audio/alignments"} <= set(fuzzed)


def test_server_still_serves_after_fuzzing(fuzz_server) -> None:
    with open(JFK, "rb") as f:
        r = httpx.post(f"{fuzz_server.base_url}/v1/audio/transcriptions", files={"file": f}, data={"language": "en"}, timeout=300)
    assert r.status_code == 200, r.text
    assert wer(JFK_TEXT, r.json()["text"]) < 0.2
    assert "unhandled error" not in fuzz_server.log.read_text()
