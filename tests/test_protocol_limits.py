"""Client-supplied ids are echoed back by the server, so their size is bounded (queued echoes stay small)."""

from __future__ import annotations

import json

import pytest

from audio_service.errors import CloseCode
from audio_service.streaming.protocol import (
    MAX_ID_CHARS,
    InvalidFrameError,
    close_code_for,
    parse_client_text,
)


@pytest.mark.parametrize(
    "message",
    [
        {"checkpoint_id": "x" * MAX_ID_CHARS},
        {"object": "stt.input.trace", "trace_id": "x" * MAX_ID_CHARS},
        {"object": "stt.input.trace", "trace_id": "t", "event_id": ["x" * 100] * 3},
    ],
)
def test_oversized_ids_are_refused_with_1007(message: dict) -> None:
    with pytest.raises(InvalidFrameError) as err:
        parse_client_text(json.dumps(message))
    assert close_code_for(err.value) == CloseCode.INVALID_PAYLOAD


def test_ids_up_to_the_limit_are_echoed_as_sent() -> None:
    cid = "x" * (MAX_ID_CHARS - 2)  # 254 characters + 2 quotes of JSON
    assert parse_client_text(json.dumps({"checkpoint_id": cid})).checkpoint_id == cid
    trace = parse_client_text(json.dumps({"object": "stt.input.trace", "trace_id": {"n": 1}, "event_id": 7}))
    assert (trace.trace_id, trace.event_id) == ({"n": 1}, 7)
