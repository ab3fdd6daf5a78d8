"""The Python client's transcription progress (``stream=true`` events) and its CLI, on the real server."""

from __future__ import annotations

import subprocess
import sys

from audio_service_client import AsyncClient, Client

from tests.audio_utils import JFK, JFK_TEXT, wer


def test_client_reports_transcription_progress(server) -> None:
    seen: list[tuple[float, str]] = []
    with Client(server.base_url) as client:
        plain = client.transcribe(JFK, language="en")
        streamed = client.transcribe(JFK, language="en", on_transcription_progress=lambda pos, text: seen.append((pos, text)))
    assert streamed.text == plain.text and wer(JFK_TEXT, streamed.text) <= 0.1
    positions = [p for p, _ in seen]
    assert positions == sorted(positions) and abs(positions[-1] - 11.0) < 0.05
    assert "".join(t for _, t in seen) == plain.text  # the deltas join into the text


def test_async_client_progress(server) -> None:
    import asyncio

    seen: list[float] = []

    async def run():
        async with AsyncClient(server.base_url) as client:
            return await client.transcribe(
                JFK, language="en", response_format="text", on_transcription_progress=lambda pos, _t: seen.append(pos)
            )

    text = asyncio.run(run())
    assert isinstance(text, str) and wer(JFK_TEXT, text) <= 0.1 and seen and seen[-1] > 10


def test_cli_transcribe_with_progress_bars(server) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "audio_service_client.cli", "--url", server.base_url, "transcribe", str(JFK), "--language", "en"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert wer(JFK_TEXT, proc.stdout) <= 0.1
