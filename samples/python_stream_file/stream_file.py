"""Stream an audio file to audio-service at real-time pace and print the live transcript.

python samples/python_stream_file/stream_file.py ../shared/data/jfk.flac [--speed 1] [--url URL]
"""

from __future__ import annotations

import argparse

from audio_service_client import Client


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", help="any audio file (decoded to 16 kHz mono PCM16 by the client)")
    ap.add_argument("--url", help="server URL (default $AUDIO_SERVICE_URL or http://127.0.0.1:8000)")
    ap.add_argument("--api-key", help="API key (default $AUDIO_SERVICE_API_KEY)")
    ap.add_argument("--language", help="spoken language, e.g. en (detected if absent)")
    ap.add_argument("--speed", type=float, default=1.0, help="1 = real time (default); 4 = four times faster")
    args = ap.parse_args()

    with Client(args.url, args.api_key) as client:
        stream = client.stream(args.file, language=args.language, speed=args.speed)
        for update in stream:
            # each patch carries only the segments that changed; the client keeps the merged state
            for seg in update.segments:
                tag = "final  " if seg.final else "partial"
                print(f"[{tag}] #{seg.id} {seg.start or 0:6.2f}s  {seg.text.strip()}", flush=True)
        print(f"TRANSCRIPT: {stream.transcript.text}")


if __name__ == "__main__":
    main()
