"""Write ``.srt`` subtitles for every audio/video file in a folder, with the batch endpoint.

python samples/batch_srt/batch_srt.py FOLDER [--out DIR] [--language en] [--workers 2]
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from audio_service_client import AudioServiceError, Client

AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus", ".webm", ".mp4", ".aac", ".wma", ".mkv"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--out", type=Path, help="where to write the .srt files (default: beside the audio)")
    ap.add_argument("--language", help="spoken language, e.g. en (detected per file if absent)")
    ap.add_argument("--workers", type=int, default=2, help="files transcribed at once")
    ap.add_argument("--url", help="server URL (default $AUDIO_SERVICE_URL or http://127.0.0.1:8000)")
    ap.add_argument("--api-key", help="API key (default $AUDIO_SERVICE_API_KEY)")
    args = ap.parse_args()

    files = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        print(f"no audio files in {args.folder}")
        return 1
    out_dir = args.out or args.folder
    out_dir.mkdir(parents=True, exist_ok=True)
    failed = 0
    with Client(args.url, args.api_key) as client:

        def one(path: Path) -> str:
            subtitles = client.transcribe(path, response_format="srt", language=args.language)
            target = out_dir / (path.stem + ".srt")
            target.write_text(subtitles, encoding="utf-8")
            return f"wrote {target}"

        with ThreadPoolExecutor(max_workers=max(1, args.workers)) as pool:
            for path, future in [(p, pool.submit(one, p)) for p in files]:
                try:
                    print(future.result(), flush=True)
                except AudioServiceError as exc:  # one bad file does not stop the folder
                    failed += 1
                    print(f"failed {path.name}: {exc}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
