"""The ``openai`` package's Realtime client on a test server: a transcription session, as a user opens one."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from openai import AsyncOpenAI
from scipy.signal import resample_poly

from audio_service.audio.resample import PcmResampler
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


def at_24k(samples: np.ndarray) -> np.ndarray:
    """16 kHz samples as a Realtime client sends them, at 24 kHz (a polyphase band-limited filter)."""
    return resample_poly(samples, 3, 2).astype(np.float32)


def server_16k(samples_24k: np.ndarray, chunk_s: float) -> np.ndarray:
    """The 16 kHz samples the server derives from ``samples_24k`` appended in chunks of ``chunk_s``: its own
    resampler on the same PCM16 chunks, flushed at the commit. Given these, the streaming protocol hears
    exactly what the realtime session heard."""
    resampler = PcmResampler(RATE)
    pcm = float_to_pcm16(samples_24k)
    step = 2 * int(chunk_s * RATE)
    out = [resampler.push(pcm[i : i + step]) for i in range(0, len(pcm), step)]
    return np.concatenate([*out, resampler.flush()])
