"""The systems ``bench/accuracy.py`` compares and its run: a real server (batch and streaming endpoints),
faster-whisper in this process (sequential and batched), built long files and the meeting (diarization) part."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
import numpy as np

from bench._common import RESULTS, jfk_with_pauses, machine_info, write_audio
from bench.accuracy import (
    DATA,
    ENGINE_SYSTEMS,
    MIXED,
    SERVICE_SYSTEMS,
    SR,
    Clip,
    FileRow,
    Output,
    Span,
    clips_for,
    join,
    normalise,
    print_differences,
    print_row,
    print_summary,
    repeated,
    rows_json,
    select,
    summarise,
    system_row,
)
from tests.audio_utils import JFK, load_16k
from tests.diarization_utils import COLLAR, der, word_turns_annotation
from tests.server import ServerProcess
from tests.stream_client import stream

MODEL = "whisper-base"
COMPUTE_TYPE = "int8"  # what the service's models.compute_type=auto picks on a CPU
CODE_SWITCH_WAV = "accuracy_code_switch.wav"
MEETINGS = (DATA / "ami_dev00.wav", DATA / "two_speakers.wav")
Runner = Callable[[Path, np.ndarray], Output]


class Engine:
    """faster-whisper run directly on the service's model directory, int8, a thread per core."""

    def __init__(self) -> None:
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        from audio_service.models.packaged import packaged_model_dir
        from audio_service.settings import Settings

        self.model_dir = packaged_model_dir(MODEL, Settings().models.cache_dir)
        self.model = WhisperModel(str(self.model_dir), device="cpu", compute_type=COMPUTE_TYPE, cpu_threads=os.cpu_count() or 1)
        self.pipeline = BatchedInferencePipeline(self.model)

    def sequential(self, path: Path, _: np.ndarray) -> Output:
        t0 = time.perf_counter()
        segments, info = self.model.transcribe(str(path), beam_size=5, vad_filter=True)
        text = " ".join(s.text.strip() for s in segments)  # the generator decodes here: inside the timing
        return Output(text, info.language, time.perf_counter() - t0)

    def batched(self, path: Path, _: np.ndarray) -> Output:
        t0 = time.perf_counter()
        segments, info = self.pipeline.transcribe(str(path), beam_size=5, batch_size=8)
        text = " ".join(s.text.strip() for s in segments)
        return Output(text, info.language, time.perf_counter() - t0)


def post(srv: ServerProcess, path: Path, data: dict) -> tuple[float, httpx.Response]:
    t0 = time.perf_counter()
    with open(path, "rb") as f:
        r = httpx.post(f"{srv.base_url}/v1/audio/transcriptions", files={"file": (path.name, f)}, data=data, timeout=3600)
    r.raise_for_status()
    return time.perf_counter() - t0, r


def batch_service(srv: ServerProcess, path: Path, _: np.ndarray) -> Output:
    """The default request (``json``, as a client sends it; timed), its language from the
    ``x-audio-service-language`` header; then, untimed, ``verbose_json`` for the segments (their
    languages and times: the code-switching and repeated-text checks)."""
    seconds, r = post(srv, path, {})
    body = post(srv, path, {"response_format": "verbose_json", "timestamp_granularities[]": ["segment"]})[1].json()
    spans = tuple(Span(s["start"], s["end"], s.get("language"), s["text"]) for s in body.get("segments", []) if s["text"].strip())
    return Output(r.json()["text"], r.headers.get("x-audio-service-language"), seconds, spans)


def stream_service(srv: ServerProcess, samples: np.ndarray, speed: float) -> Output:
    """100 ms frames at ``speed`` x real time; the final segments in id order once ``final`` is answered."""
    audio_s = len(samples) / SR
    timeout = 300 + (audio_s / speed if speed > 0 else audio_s)
    r = asyncio.run(stream(srv.ws_url, samples, frame_ms=100, pace=speed, timeout_s=timeout))
    if r.errors or "final" not in r.checkpoints:
        raise RuntimeError(f"stream ended without the final checkpoint: errors {r.errors}, close code {r.close_code}")
    finals = [s for _, s in sorted(r.segments.items()) if s["is_final"] and s["text"].strip()]
    # the stream's language: the one most of its final text was decoded in
    spoken: dict[str, int] = {}
    for s in finals:
        spoken[s.get("language") or ""] = spoken.get(s.get("language") or "", 0) + len(s["text"])
    language = max(spoken, key=lambda k: spoken[k]) if spoken else None
    spans = tuple(Span(s["start"], s["end"], s.get("language"), s["text"]) for s in finals)
    # the stream's time: first frame sent to the final checkpoint's answer (the last message)
    return Output(" ".join(s["text"].strip() for s in finals), language or None, r.messages[-1][0], spans)


def runners(systems: Sequence[str], srv: ServerProcess | None, engine: Engine | None, stream_speed: float) -> dict[str, Runner]:
    table: dict[str, Runner] = {}
    if srv is not None:
        table["batch"] = lambda path, samples: batch_service(srv, path, samples)
        table["stream"] = lambda path, samples: stream_service(srv, samples, stream_speed)
    if engine is not None:
        table["engine_seq"], table["engine_batched"] = engine.sequential, engine.batched
    return {s: table[s] for s in systems}


# ---- built long files ---------------------------------------------------------------------------


def long_clips(clips: Sequence[Clip]) -> list[Clip]:
    """(a) the English recordings joined with 0.6 s pauses, (b) jfk x4 with 4 s pauses (60 s), (c) the
    code-switching file: en_librispeech* then de_fleurs* joined with 0.8 s pauses (when the set has them)."""
    out = []
    english = [c for c in clips if c.language == "en" and c.path != JFK]
    if english:
        audio, text, spans = join([(load_16k(c.path), c.reference, "en") for c in english], 0.6)
        out.append(Clip("long_en_joined", write_audio("accuracy_en_joined.wav", audio), "en", text, len(audio) / SR, True, spans))
    audio, text = jfk_with_pauses(4, 4.0)
    out.append(Clip("long_jfk_x4", write_audio("jfk_x4_60s.wav", audio), "en", text, len(audio) / SR, True))
    en = [c for c in clips if c.name.startswith("en_librispeech")]
    de = [c for c in clips if c.name.startswith("de_fleurs")]
    if en and de:
        audio, text, spans = join([(load_16k(c.path), c.reference, c.language) for c in en + de], 0.8)
        out.append(Clip("long_code_switch", write_audio(CODE_SWITCH_WAV, audio), MIXED, text, len(audio) / SR, True, spans))
    return out


# ---- meetings -----------------------------------------------------------------------------------


def cpwer(stm: Path, words: list[dict], session: str, language: str = "en") -> dict | None:
    """cpWER (meeteval) against a speaker-attributed reference ``stm``; None without one."""
    if not stm.exists():
        return None
    import meeteval

    def norm(seg: dict) -> dict:
        return {**seg, "words": normalise(seg["words"], language)}

    reference = meeteval.io.STM.load(stm).to_seglst().map(norm)
    hypothesis = meeteval.io.SegLST(
        [
            {
                "session_id": session,
                "speaker": w["speaker_id"],
                "words": w["word"],
                "start_time": w["start"],
                "end_time": w["end"],
            }
            for w in words
        ]
    ).map(norm)
    r = meeteval.wer.cpwer(reference, hypothesis)[session]
    return {"cpwer": round(r.error_rate, 4), "errors": r.errors, "ref_words": r.length}


def built_meetings(sizes: Sequence[int] = (2, 3, 4, 5), seed: int = 0) -> list[Path]:
    """Meetings built from the real recordings (``tests/real_meetings.py``: different readers, overlaps,
    backchannels), written as WAV with their RTTM beside them."""
    from tests.real_meetings import build_real_meeting, write_rttm

    out = []
    for n in sizes:
        samples, reference = build_real_meeting(n, seed)
        wav = write_audio(f"real_meeting_{n}spk_seed{seed}.wav", samples)
        reference.uri = wav.stem
        write_rttm(reference, wav.with_suffix(".rttm"))
        out.append(wav)
    return out


def meeting(srv: ServerProcess, wav: Path) -> dict:
    """Diarize ``wav`` through the batch endpoint; DER of the speaker turns read off the words against
    the RTTM beside it (collar 0.25 s, overlapped speech scored)."""
    from pyannote.database.util import load_rttm

    reference = load_rttm(str(wav.with_suffix(".rttm")))[wav.stem]
    data = {"response_format": "verbose_json", "timestamp_granularities[]": ["word", "segment"], "diarize": "true"}
    seconds, response = post(srv, wav, data)
    body = response.json()
    words = [w for w in body.get("words", []) if "speaker_id" in w]
    with warnings.catch_warnings():  # pyannote says it takes the scored extent from the turns: that is intended
        warnings.filterwarnings("ignore", message="'uem' was approximated")
        scores = der(reference, word_turns_annotation(words, reference.uri))
    out = {
        "file": wav.name,
        "time_s": round(seconds, 3),
        "collar_s": COLLAR,
        "skip_overlap": False,
        **{k: round(v, 4) for k, v in scores.items()},
        "speakers_found": len({w["speaker_id"] for w in words}),
        "speakers_reference": len(reference.labels()),
        "cpwer": cpwer(wav.with_suffix(".stm"), words, wav.stem),
        "segments_repeated": repeated(
            [Span(s["start"], s["end"], s.get("language"), s["text"]) for s in body.get("segments", []) if s["text"].strip()]
        ),
    }
    cp = "" if out["cpwer"] else "  (cpWER needs a speaker-attributed reference, <name>.stm: skipped)"
    print(
        f"[meeting {wav.name}] DER {out['der']:.3f} (confusion {out['confusion_s']:.2f} s, missed {out['missed_s']:.2f} s,"
        f" false alarm {out['false_alarm_s']:.2f} s of {out['total_s']:.2f} s), speakers {out['speakers_found']}"
        f" found / {out['speakers_reference']} reference, {out['segments_repeated']} segments repeated{cp}"
    )
    return out


# ---- the run ------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict:
    systems: list[str] = args.systems
    available = clips_for(args)
    clips = select(available, args.files, args.match) + (long_clips(available) if args.long else [])
    engine = Engine() if set(systems) & set(ENGINE_SYSTEMS) else None
    with contextlib.ExitStack() as stack:
        srv = None
        if set(systems) & set(SERVICE_SYSTEMS) or args.meetings:
            streaming = {"streaming": args.streaming_settings} if args.streaming_settings else {}
            srv = stack.enter_context(ServerProcess(log_path=RESULTS / "accuracy-server.log", **streaming))
        table = runners(systems, srv, engine, args.stream_speed)
        jfk = load_16k(JFK)
        for fn in table.values():  # warm-up, untimed: first calls pay for lazy loading
            fn(JFK, jfk)
        rows = []
        for clip in clips:
            samples = load_16k(clip.path)
            outs = {s: fn(clip.path, samples) for s, fn in table.items()}
            rows.append(
                FileRow(
                    clip.name,
                    clip.language,
                    round(len(samples) / SR, 2),
                    clip.long,
                    {s: system_row(clip, o, s) for s, o in outs.items()},
                )
            )
            print_row(rows[-1])
        wavs = [*MEETINGS, *built_meetings()] if args.meetings else []
        meetings = [meeting(srv, wav) for wav in wavs] if srv is not None else []
    summary = summarise(rows, systems)
    print_summary(summary, systems)
    print("\nfiles where a service system differs from engine_seq by more than 0.01:")
    print_differences(rows)
    result = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(["python bench/accuracy.py", *sys.argv[1:]]),  # a short run must not read as the full one
        "machine": machine_info(),
        "model": f"{MODEL} (packaged)",
        "compute_type": COMPUTE_TYPE,
        "cpu_threads": os.cpu_count(),
        "systems": systems,
        "stream_speed": args.stream_speed,
        **({"streaming_settings": args.streaming_settings} if args.streaming_settings else {}),
        "normaliser": "whisper-normalizer (English for en, basic otherwise)",
        "files": rows_json(rows),
        "summary": summary,
        "meetings": meetings,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(f"wrote {args.out}")
    return result
