"""``audio-service-client``: transcribe/translate files (with upload and transcription progress bars) and stream live."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
from rich.text import Text

from audio_service_client.client import Client
from audio_service_client.errors import AudioServiceError
from audio_service_client.results import StreamTranscript, Transcription

FORMATS = ("json", "text", "srt", "vtt", "verbose_json")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="audio-service-client", description=__doc__)
    p.add_argument("--url", help="server base URL (default: $AUDIO_SERVICE_URL or http://127.0.0.1:8000)")
    p.add_argument("--api-key", help="API key (default: $AUDIO_SERVICE_API_KEY)")
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("transcribe", "translate"):
        b = sub.add_parser(name, help=f"{name} an audio file (or URL) with the batch endpoint")
        b.add_argument("file")
        b.add_argument("--format", choices=FORMATS, default=None, help="response_format (default: plain text)")
        b.add_argument("--language")
        b.add_argument("--model")
        b.add_argument("--prompt")
        b.add_argument("--words", action="store_true", help="word timestamps (implies verbose_json)")
        if name == "transcribe":
            b.add_argument("--diarize", action="store_true", help="label speakers (prints one line per speaker turn)")
            b.add_argument("--min-speakers", type=int)
            b.add_argument("--max-speakers", type=int)
        b.add_argument("--no-progress", action="store_true", help="no upload / transcription progress bars")
    s = sub.add_parser("stream", help="stream a file (at real-time pace) or the microphone; live transcript")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("file", nargs="?")
    src.add_argument("--mic", action="store_true", help="stream the default microphone until Ctrl-C")
    s.add_argument("--language")
    s.add_argument("--model")
    s.add_argument("--speed", type=float, default=1.0, help="pace for files: 1 = real time, 0 = as fast as possible")
    s.add_argument("--seconds", type=float, help="stop the microphone after this many seconds")
    s.add_argument("--diarize", action="store_true", help="label speakers (servers with a streaming speaker tracker)")
    s.add_argument("--plain", action="store_true", help="print each final segment as a line instead of a live view")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console()
    try:
        with Client(args.url, args.api_key) as client:
            if args.command == "stream":
                return _stream(client, args, console)
            return _batch(client, args, console)
    except (AudioServiceError, RuntimeError, OSError) as exc:  # server errors, no microphone, unreadable file
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
        return 1


def _batch(client: Client, args: argparse.Namespace, console: Console) -> int:
    diarize = getattr(args, "diarize", False)
    params: dict[str, Any] = {"language": args.language, "model": args.model, "prompt": args.prompt}
    if args.format:
        params["response_format"] = args.format
    if args.words:
        params.update(response_format="verbose_json", timestamp_granularities=["word", "segment"])
    if diarize:
        params.update(diarize=True, min_speakers=args.min_speakers, max_speakers=args.max_speakers)
    params = {k: v for k, v in params.items() if v is not None}
    method = client.transcribe if args.command == "transcribe" else client.translate
    show_bar = not args.no_progress and not str(args.file).startswith(("http://", "https://"))
    columns = ("[progress.description]{task.description}", BarColumn(), TaskProgressColumn(), TextColumn("{task.fields[info]}"))
    with Progress(*columns, console=Console(stderr=True), transient=True, disable=not show_bar) as progress:
        upload = progress.add_task("upload", total=None, info="")

        def on_upload(sent: int, total: int | None) -> None:
            progress.update(upload, completed=sent, total=total, info=f"{sent / 1e6:.1f} MB")

        # the transcription bar comes from the server's progress events (stream=true): plain-text results only
        if show_bar and args.command == "transcribe" and params.get("response_format") in (None, "json", "text"):
            params["on_transcription_progress"] = _TranscriptionBar(progress, args.file)
        result = method(args.file, on_progress=on_upload, **params)
    # plain stdout, not rich: subtitles and JSON must not be re-wrapped to the terminal width
    if isinstance(result, str):
        sys.stdout.write(result)
    elif diarize and args.format is None:
        for speaker, start, end, text in speaker_turns(result):
            print(f"[{start:7.2f} - {end:7.2f}] {speaker}: {text}")
    elif args.format == "verbose_json" or args.words:
        print(json.dumps(result.model_dump(exclude_none=True, exclude={"headers"}), indent=2, ensure_ascii=False))
    else:
        print(result.text)
    return 0


class _TranscriptionBar:
    """Audio seconds transcribed, fed by the server's ``stream=true`` events (total from the file's header)."""

    def __init__(self, progress: Progress, file: str) -> None:
        from audio_service_client.audio import probe_duration

        self._progress, self._total = progress, probe_duration(file)
        self._task: Any = None

    def __call__(self, position_s: float, _text: str) -> None:
        if self._task is None:  # the first event: the upload is done and the server transcribes
            self._task = self._progress.add_task("transcribe", total=self._total, info="")
        total = f"/{self._total:.0f}" if self._total else ""
        self._progress.update(self._task, completed=position_s, info=f"{position_s:.0f}{total} s of audio")


def speaker_turns(t: Transcription) -> list[tuple[str, float, float, str]]:
    """Consecutive words of one speaker joined into turns: ``(speaker, start, end, text)``."""
    turns: list[list[Any]] = []
    for w in t.words or []:
        who = w.speaker_id or "?"
        if turns and turns[-1][0] == who:
            turns[-1][2], turns[-1][3] = w.end, turns[-1][3] + w.word
        else:
            turns.append([who, w.start, w.end, w.word])
    if not turns:  # no words: fall back to segments
        turns = [[s.speaker_id or "?", s.start, s.end, s.text] for s in t.segments or []]
    return [(a, b, c, d.strip()) for a, b, c, d in turns]


def render_transcript(t: StreamTranscript) -> Text:
    """Final segments in normal style, partial (still changing) ones dim italic; speaker labels when given."""
    out = Text()
    speaker = None
    for seg in t.ordered():
        text = seg.text.strip()
        who = seg.speaker_id or next((w.speaker_id for w in seg.words if w.speaker_id), None)
        if who and who != speaker:
            out.append(("\n" if out.plain else "") + f"{who}: ", style="bold cyan")
            speaker = who
        if text:
            out.append(text + " ", style="default" if seg.final else "dim italic")
    return out


def _stream(client: Client, args: argparse.Namespace, console: Console) -> int:
    stop = threading.Event()
    if args.mic:
        from audio_service_client.mic import microphone_chunks

        source: Any = microphone_chunks(stop, max_seconds=args.seconds)
        # Ctrl-C ends the microphone; the stream then flushes with its final checkpoint
        signal.signal(signal.SIGINT, lambda *_: (stop.set(), signal.signal(signal.SIGINT, signal.default_int_handler)))
    else:
        source = args.file
    stream = client.stream(
        source, language=args.language, model=args.model, speed=args.speed or None, diarize=args.diarize or None
    )
    if args.plain or not console.is_terminal:
        printed: set[int] = set()
        for update in stream:
            for seg in update.transcript.ordered():
                if seg.final and seg.id not in printed:
                    printed.add(seg.id)
                    label = f"{seg.speaker_id}: " if seg.speaker_id else ""
                    print(label + seg.text.strip(), flush=True)
        return 0
    header = Text("live transcript (final / ", style="bold").append("partial", style="dim italic").append(")", style="bold")
    with Live(Group(header, Text("")), console=console, refresh_per_second=10) as live:
        for update in stream:
            live.update(Group(header, render_transcript(update.transcript)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
