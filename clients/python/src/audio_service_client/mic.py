"""Microphone input as an iterator of 16 kHz PCM16 chunks (needs the ``mic`` extra: sounddevice)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

from audio_service_client.audio import SAMPLE_RATE


def microphone_chunks(
    stop: threading.Event, frame_ms: int = 100, device: int | str | None = None, max_seconds: float | None = None
) -> Iterator[bytes]:
    """Yield PCM16LE frames from the default (or given) input device until ``stop`` is set.

    PortAudio resamples to 16 kHz for us, so frames go to the server as they are.
    """
    try:
        import sounddevice as sd
    except (ImportError, OSError) as exc:  # OSError: the PortAudio library itself is missing
        raise RuntimeError("microphone input needs `pip install audio-service-client[mic]` and PortAudio") from exc
    frames: queue.Queue[bytes] = queue.Queue()
    blocksize = SAMPLE_RATE * frame_ms // 1000

    def on_audio(indata, _frames, _time, _status) -> None:  # runs on PortAudio's thread
        frames.put(bytes(indata))

    sent = 0.0
    with sd.RawInputStream(
        samplerate=SAMPLE_RATE, channels=1, dtype="int16", blocksize=blocksize, device=device, callback=on_audio
    ):
        while not stop.is_set() and (max_seconds is None or sent < max_seconds):
            try:
                chunk = frames.get(timeout=0.2)
            except queue.Empty:
                continue
            sent += len(chunk) / 2 / SAMPLE_RATE
            yield chunk
