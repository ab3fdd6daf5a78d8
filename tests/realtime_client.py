"""The ``openai`` package's Realtime client on a test server: a transcription session, as a user opens one."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from openai import AsyncOpenAI

from tests.audio_utils import float_to_pcm16

RATE = 24000  # OpenAI's PCM rate


def connect(server) -> Any:
    """``async with connect(server) as conn``: a Realtime connection with ``intent=transcription``."""
    client = AsyncOpenAI(api_key="sk-unused", base_url=f"{server.base_url}/v1", websocket_base_url=f"{server.ws_url}/v1")
    return client.realtime.connect(model="whisper-1", extra_query={"intent": "transcription"})


async def configure(conn, language: str | None, turn_detection: dict[str, Any] | None, rate: int = RATE) -> None:
    """``session.update``: PCM at ``rate`` (16000: the server's extension), ``language``, ``turn_detection``
    (None: commits by hand)."""
    transcription = {"model": "whisper-1", "language": language}
    fmt = {"type": "audio/pcm", "rate": rate}
    await conn.session.update(
        session={
            "type": "transcription",
            "audio": {"input": {"format": fmt, "transcription": transcription, "turn_detection": turn_detection}},
        }
    )


def append_event(samples: np.ndarray) -> str:
    """The base64 ``audio`` of ``input_audio_buffer.append`` for float samples."""
    return base64.b64encode(float_to_pcm16(samples)).decode()
