"""Live microphone transcription with audio-service (sounddevice), or a file played as if it were a mic.

python samples/python_mic/mic.py                 # speak; Ctrl-C ends the stream
python samples/python_mic/mic.py --file a.flac   # no microphone: the file, paced like a live input
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
from collections.abc import Iterator

from audio_service_client import Client, decode_file

FRAME_MS = 100


def file_as_microphone(path: str, stop: threading.Event, speed: float) -> Iterator[bytes]:
    """The file's audio in 100 ms blocks delivered at the pace a sound card would deliver them."""
    pcm = decode_file(path)
    n = 16000 * FRAME_MS // 1000
    t0 = time.monotonic()
    for i, start in enumerate(range(0, len(pcm), n)):
        if stop.is_set():
            return
        time.sleep(max(0.0, t0 + i * FRAME_MS / 1000 / speed - time.monotonic()))
        yield pcm[start : start + n].tobytes()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--file", help="read this file instead of a microphone (for CI and machines without one)")
    ap.add_argument("--speed", type=float, default=1.0, help="with --file: 1 = real time")
    ap.add_argument("--seconds", type=float, help="stop the microphone after this many seconds")
    ap.add_argument("--device", help="input device name or index (see `python -m sounddevice`)")
    ap.add_argument("--url", help="server URL (default $AUDIO_SERVICE_URL or http://127.0.0.1:8000)")
    ap.add_argument("--api-key", help="API key (default $AUDIO_SERVICE_API_KEY)")
    ap.add_argument("--language", help="spoken language, e.g. en")
    args = ap.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())  # Ctrl-C: stop capturing, then flush the stream
    if args.file:
        chunks = file_as_microphone(args.file, stop, args.speed)
    else:
        from audio_service_client.mic import microphone_chunks  # needs audio-service-client[mic]

        device = int(args.device) if args.device and args.device.isdigit() else args.device
        chunks = microphone_chunks(stop, FRAME_MS, device=device, max_seconds=args.seconds)
        print("listening... (Ctrl-C to stop)", flush=True)

    printed: set[int] = set()
    with Client(args.url, args.api_key) as client:
        stream = client.stream(chunks, language=args.language)
        for update in stream:
            for seg in update.transcript.ordered():
                if seg.final and seg.id not in printed:  # print each segment once, when it is final
                    printed.add(seg.id)
                    print(f"> {seg.text.strip()}", flush=True)
        print(f"TRANSCRIPT: {stream.transcript.text}")


if __name__ == "__main__":
    main()
