"""Unit tests of pure logic: settings/CLI, chunk packing and time mapping, segmentation, DSP, URL guard."""

from __future__ import annotations

import numpy as np
import pytest

from audio_service.audio.fetch import _allowed, looks_like_url
from audio_service.audio.preprocess import low_shelf, preprocess
from audio_service.cli import main
from audio_service.pipeline.chunking import TimeMap, pack
from audio_service.pipeline.segmenter import SegmenterOptions, resegment
from audio_service.schema import Audio, Segment, SpeechSpan, Word


def test_cli_help_lists_every_setting(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    for flag in (
        "--models.device",
        "--models.compute-type",
        "--models.sources",
        "--auth.api-keys",
        "--server.max-upload-bytes",
        "--server.url-fetch-allowlist",
        "--batch.workers",
        "--quotas.max-streams-per-key",
        "--streaming.max-batch",
        "--ray.enabled",
    ):
        assert flag in out


def test_pack_removes_silence_and_maps_times_back() -> None:
    sr = 16000
    audio = Audio(np.arange(60 * sr, dtype=np.float32) / (60 * sr))
    spans = [SpeechSpan(5.0, 10.0), SpeechSpan(9.5, 12.0), SpeechSpan(40.0, 70.0)]  # overlapping, past the end
    packed = pack(audio, spans, max_len=30.0, gap_s=0.3)
    assert [(p.start, p.end) for p in packed.pieces] == [(5.0, 12.0), (40.0, 60.0)]
    assert packed.audio.duration == pytest.approx(7.0 + 0.3 + 20.0)
    assert all(b - a <= 30.0 for a, b in packed.windows)
    clock = TimeMap(packed.pieces)
    assert clock.original(0.0) == 5.0
    assert clock.original(7.3) == pytest.approx(40.0)
    assert clock.original(7.0, is_end=True) == pytest.approx(12.0)
    # a word stretched back over the cut belongs to the piece it ends in
    assert clock.word(6.8, 7.9) == (40.0, pytest.approx(40.6))
    # the packed audio holds the original samples
    assert packed.audio.samples[0] == audio.samples[5 * sr]


def test_pack_splits_over_long_speech() -> None:
    packed = pack(Audio(np.zeros(100 * 16000, np.float32)), [SpeechSpan(0.0, 100.0)], max_len=30.0)
    assert len(packed.windows) == 4 and all(b - a <= 30.0 + 1e-6 for a, b in packed.windows)


def _words(spec: list[tuple[str, float, float]]) -> tuple[Word, ...]:
    return tuple(Word(s, e, w) for w, s, e in spec)


def test_resegment_cuts_at_sentences_and_pauses() -> None:
    words = _words(
        [
            (" Hello", 0.0, 0.4),
            (" there.", 0.4, 0.8),
            (" How", 0.9, 1.1),
            (" are", 1.1, 1.3),
            (" you", 1.3, 1.5),
            (" doing", 3.0, 3.4),
            (" today?", 3.4, 3.9),
        ]
    )
    seg = Segment(id=0, start=0.0, end=3.9, text="".join(w.word for w in words), words=words, avg_logprob=-0.2)
    out = resegment((seg,))
    assert [s.text for s in out] == [" Hello there.", " How are you", " doing today?"]
    assert [s.id for s in out] == [0, 1, 2]
    assert out[1].start == 0.9 and out[1].end == 1.5 and out[1].avg_logprob == -0.2
    assert seg.words == words  # input untouched


def test_resegment_caps_long_runs() -> None:
    words = tuple(Word(i * 0.5, i * 0.5 + 0.4, f" w{i}" + ("," if i == 20 else "")) for i in range(40))
    out = resegment((Segment(0, 0.0, 20.0, "", words),), opts=SegmenterOptions(max_duration_s=12.0))
    assert len(out) >= 2 and all(s.end - s.start <= 12.0 for s in out)
    assert out[0].words[-1].word == " w20,"  # cut at the clause end
    assert sum(len(s.words) for s in out) == 40


def test_dynamic_preprocessing_levels_loudness() -> None:
    rng = np.random.default_rng(0)
    quiet = 0.01 * rng.standard_normal(16000).astype(np.float32)
    loud = 0.5 * rng.standard_normal(16000).astype(np.float32)
    out = preprocess(Audio(np.concatenate([quiet, loud])), "dynamic").samples
    rms = lambda x: float(np.sqrt(np.mean(x**2)))  # noqa: E731
    before = rms(loud) / rms(quiet)
    after = rms(out[20000:]) / rms(out[4000:16000])
    assert after < before / 3  # the loudness gap shrinks
    assert preprocess(Audio(quiet), "none").samples is quiet


def test_low_shelf_boosts_bass_only() -> None:
    t = np.arange(16000) / 16000
    bass, treble = np.sin(2 * np.pi * 80 * t), np.sin(2 * np.pi * 3000 * t)
    gain = lambda x: np.abs(low_shelf(x.astype(np.float32), 16000, 6.0, 250.0)[4000:]).max()  # noqa: E731
    assert gain(bass) == pytest.approx(10 ** (6 / 20), rel=0.1)
    assert gain(treble) == pytest.approx(1.0, rel=0.05)


def test_url_guard() -> None:
    assert looks_like_url("https://example.org/a.mp3") and looks_like_url(b"http://x/y.wav\n")
    assert not looks_like_url(b"RIFF....WAVE") and not looks_like_url("hello world")
    assert _allowed("example.org", ["93.184.216.34"], [])
    assert not _allowed("localhost", ["127.0.0.1"], [])
    assert not _allowed("intranet", ["10.1.2.3"], ["192.168.0.0/16"])
    assert _allowed("intranet", ["10.1.2.3"], ["10.0.0.0/8"])
    assert _allowed("localhost", ["127.0.0.1", "::1"], ["localhost"])


def test_speech_blocks_cut_in_pauses_and_join_on_the_file_clock() -> None:
    from audio_service.pipeline.blocks import join, speech_blocks
    from audio_service.schema import Transcript

    sr = 16000
    # 25 s of "audio" in 10 s raw blocks; speech at 2-9.9 s, 9.95-12 s (no pause at the first block end), 21-24 s
    speech = [(2.0, 9.9), (9.95, 12.0), (21.0, 24.0)]
    raw = [Audio(np.zeros(10 * sr, np.float32)), Audio(np.zeros(10 * sr, np.float32)), Audio(np.zeros(5 * sr, np.float32))]
    offsets: list[float] = []

    def find_speech(audio: Audio) -> list[SpeechSpan]:  # the file's speech, on this block's clock
        base = offsets[-1] if offsets else 0.0
        return [
            SpeechSpan(max(0.0, a - base), min(audio.duration, b - base))
            for a, b in speech
            if b > base and a < base + audio.duration
        ]

    blocks = []
    for block in speech_blocks(raw, lambda a: find_speech(a)):
        blocks.append(block)
        offsets.append(block.offset + block.audio.duration)
    assert sum(b.audio.duration for b in blocks) == pytest.approx(25.0)
    assert blocks[0].audio.duration == pytest.approx(1.0)  # cut in the 0-2 s pause: speech runs over the 10 s mark
    assert all(s.end <= b.audio.duration for b in blocks for s in b.spans)

    parts = [
        (b.offset, Transcript("transcribe", "en", b.audio.duration, (Segment(0, 0.5, 1.0, " x", (Word(0.5, 1.0, " x"),)),)))
        for b in blocks
    ]
    joined = join(parts, 25.0)
    assert [s.id for s in joined.segments] == list(range(len(blocks)))
    assert [s.start for s in joined.segments] == [pytest.approx(b.offset + 0.5) for b in blocks]
    assert joined.segments[-1].words[0].start == pytest.approx(blocks[-1].offset + 0.5)


def test_docs_document_every_setting() -> None:
    from pathlib import Path

    from audio_service.settings import env_name, flag_name, groups

    page = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    missing = [
        f"{group}.{name}"
        for group, model in groups().items()
        for name in model.model_fields
        if f"`{env_name(group, name)}`" not in page or f"`{flag_name(group, name)}`" not in page
    ]
    assert not missing, f"docs/configuration.md settings table lacks {missing}: run scripts/settings_table.py --write"


def test_pack_ends_a_full_window_at_the_longest_pause() -> None:
    # three 11 s "sentences", each two pieces with a 0.3 s breath inside, 4 s pauses between them
    spans = []
    for k in range(3):
        t = k * 15.0
        spans += [SpeechSpan(t, t + 5.0), SpeechSpan(t + 5.3, t + 11.0)]
    packed = pack(Audio(np.zeros(50 * 16000, np.float32)), spans, max_len=30.0)
    clock = TimeMap(packed.pieces)
    ends = [clock.original(b, is_end=True) for _a, b in packed.windows]
    assert ends == [pytest.approx(26.0), pytest.approx(41.0)]  # after two sentences, not 5 s into the third
    assert all(b - a <= 30.0 for a, b in packed.windows)


def test_pack_never_cuts_windows_shorter_than_a_second() -> None:
    # a tiny limit must not split the speech into endless pieces (the fuzzer found an out-of-memory kill)
    packed = pack(Audio(np.zeros(10 * 16000, np.float32)), [SpeechSpan(0.0, 10.0)], max_len=1e-300)
    assert len(packed.pieces) == 10 and len(packed.windows) == 10


def test_fanned_out_blocks_survive_a_lost_lane(monkeypatch) -> None:
    """Pure logic (fake lanes): a lane that loses its worker gives the block back; every block is done once,
    in order, and the receiver's own lane takes what a retired lane could not."""
    import asyncio

    from audio_service.pipeline import fanout
    from audio_service.pipeline.asr import AsrOptions
    from audio_service.pipeline.blocks import Block
    from audio_service.schema import Transcript

    monkeypatch.setattr(fanout, "LANE_RETRY_S", 0.0)
    blocks = [Block(float(i), Audio(np.full(160, i, np.float32)), ()) for i in range(6)]
    done: list[tuple[str, int]] = []

    def lane(name: str, lose: int):
        async def send(task: fanout.BlockTask) -> fanout.BlockResult:
            await asyncio.sleep(0.01)
            index = int(task.audio().samples[0])
            if name == "remote" and sum(w == name for w, _ in done) >= 1 and lose:  # dies after its first block
                raise fanout.LaneLost("replica died")
            done.append((name, index))
            return fanout.BlockResult(Transcript("transcribe", "en", 0.01, ()), f"{name}:{index}")

        return send

    results = asyncio.run(fanout.transcribe_blocks(blocks, [lane("here", 0), lane("remote", 1)], "m", AsrOptions(), None, False))
    assert [r.worker.split(":")[1] for r in results] == [str(i) for i in range(6)]
    assert sorted(i for _, i in done) == list(range(6))  # each block once
    assert sum(w == "remote" for w, _ in done) == 1 and sum(w == "here" for w, _ in done) == 5


def test_torch_threads_follow_cpu_threads_unless_the_operator_set_them(monkeypatch) -> None:
    import os

    from audio_service.models.priority import limit_torch_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delitem(__import__("sys").modules, "torch", raising=False)  # not imported yet: env only
    limit_torch_threads(0)
    assert "OMP_NUM_THREADS" not in os.environ
    limit_torch_threads(1)
    assert os.environ["OMP_NUM_THREADS"] == "1"
    limit_torch_threads(3)  # an existing value (the operator's, or Ray's per-actor one) wins
    assert os.environ["OMP_NUM_THREADS"] == "1"
