"""Settings that cannot work fail when they are loaded, naming the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from audio_service.settings import Settings


@pytest.mark.parametrize(
    "field, value",
    [
        ("port", 0),
        ("beam_size", 0),
        ("inference_workers", 0),
        ("replicas", 0),
        ("stream_max_batch", 0),
        ("stream_max_segment_s", 60.0),  # a stream's decode window holds at most 30 s of audio
        ("stream_vad_threshold", 1.5),
        ("max_streams_per_key", -1),
    ],
)
def test_a_value_that_cannot_work_is_refused_at_load(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as err:
        Settings.model_validate({field: value})
    assert field in str(err.value)


def test_the_defaults_load() -> None:
    assert Settings.model_validate({}).port == 8000
