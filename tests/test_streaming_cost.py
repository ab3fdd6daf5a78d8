"""What keeps streaming cheap, without a model: which partials are decoded, on which model,
with what token budget, and how the partial interval follows the load.

Pure logic, like tests/test_streaming_state.py: decode results are small dataclasses written here.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from audio_service.schema import SAMPLE_RATE
from audio_service.streaming.cuts import CutEdges
from audio_service.streaming.engine import MAX_PARTIAL_SCALE, LoadMeter
from audio_service.streaming.session import StreamSession
from audio_service.streaming.stabilize import SPEECH_TAIL_S, Hypothesis
from audio_service.streaming.values import SessionConfig, StreamOptions
from audio_service.whisper.types import DecodedWord, DecodeResult

SR = SAMPLE_RATE


def result(*spec: tuple[str, float, float]) -> DecodeResult:
    ws = tuple(DecodedWord(w, s, e, 0.9, (1000 + i, 2000 + i)) for i, (w, s, e) in enumerate(spec))
    return DecodeResult("".join(w.word for w in ws).strip(), ws, "en", 0.01, -0.2)


def test_no_partial_over_silence_unless_a_marker_waits():
    hyp = Hypothesis(0)
    hyp.submit(2 * SR)
    last_speech = 2 * SR - SR // 2
    assert not hyp.due(0, last_speech, 3 * SR, 0.5, None)  # the last partial heard every word
    assert hyp.due(0, last_speech, 3 * SR, 0.5, marker_at=3 * SR)  # a trace waits for this audio
    last_speech = 2 * SR - int(SPEECH_TAIL_S * SR) + 1  # speech right before the last partial's end
    assert hyp.due(0, last_speech, 3 * SR, 0.5, None)


def test_partial_token_budget_follows_the_heard_words_and_the_new_audio():
    hyp = Hypothesis(0)
    first = hyp.token_budget(0, SR)
    hyp.take(result((" ask", 0.1, 0.4), (" not", 0.5, 0.8)), SR, BASE, CutEdges(), None)
    assert hyp.heard_tokens == 4
    assert hyp.token_budget(0, SR + SR // 2) < hyp.token_budget(0, 2 * SR)
    assert hyp.token_budget(0, SR) == first - int(5 * 1.0) + 4  # heard words replace the audio's share


def test_local_agreement_ignores_case_and_punctuation():
    hyp, edges = Hypothesis(0), CutEdges()
    hyp.take(result((" And", 0.1, 0.3), (" so", 0.3, 0.5), (" my", 0.6, 0.8)), SR, BASE, edges, None)
    hyp.take(result((" and", 0.1, 0.3), (" so,", 0.3, 0.5), (" my", 0.6, 0.8), (" fellow", 0.9, 1.2)), 2 * SR, BASE, edges, None)
    assert hyp.locked == (1000, 2000, 1001, 2001, 1002, 2002)


# the session only hands models to the engine: these stand in for a multilingual one and an English-only draft
BASE = SimpleNamespace(spec=SimpleNamespace(id="base"), multilingual=True)
TINY_EN = SimpleNamespace(spec=SimpleNamespace(id="tiny.en"), multilingual=False)


def session(language: str | None) -> StreamSession:
    return StreamSession(
        StreamOptions(skip_vad=True, language=language), BASE, SessionConfig(max_segment_s=5.0), lambda m: None, draft=TINY_EN
    )


def test_an_english_only_draft_decodes_partials_of_english_streams_only():
    assert session("en").model_for(final=False) is TINY_EN and session("en").model_for(final=True) is BASE
    assert session("de").model_for(final=False) is BASE
    s = session(None)  # language detected by the first final
    assert s.model_for(final=False) is BASE
    s.feed(np.zeros(5 * SR, np.float32))  # the maximum length closes the segment
    s.complete(s.next_job(final=True), result((" hello", 0.1, 0.5)))  # heard as English
    assert s.model_for(final=False) is TINY_EN


def test_agreed_tokens_are_forced_only_on_the_model_that_produced_them():
    s = session("en")
    s.feed(np.zeros(SR, np.float32))
    job = s.next_job(final=False)
    assert job is not None and job.model is TINY_EN and job.request.max_tokens > 0
    s.complete(job, result((" ask", 0.1, 0.4), (" not", 0.5, 0.8)))
    s.feed(np.zeros(SR, np.float32))
    job = s.next_job(final=False)
    s.complete(job, result((" ask", 0.1, 0.4), (" not", 0.5, 0.8), (" what", 0.9, 1.2)))
    s.feed(np.zeros(SR, np.float32))
    assert s.next_job(final=False).request.prefix_tokens == (1000, 2000, 1001, 2001)
    hyp = Hypothesis(0)  # tokens agreed on by another model are in another vocabulary
    hyp.take(result((" ask", 0.1, 0.4), (" not", 0.5, 0.8)), SR, BASE, CutEdges(), None)
    hyp.take(result((" ask", 0.1, 0.4), (" not", 0.5, 0.8), (" what", 0.9, 1.2)), 2 * SR, BASE, CutEdges(), None)
    assert hyp.prefix_for(BASE) == (1000, 2000, 1001, 2001) and hyp.prefix_for(TINY_EN) == ()


def test_partial_interval_grows_smoothly_with_streams_waiting_and_is_capped():
    load = LoadMeter(workers=1)
    for _ in range(50):
        load.update(1)
    assert load.scale == 1.0  # one stream never waits for another
    scales = []
    for _ in range(50):
        load.update(3)
        scales.append(load.scale)
    assert scales == sorted(scales) and 1.0 < scales[0] < scales[-1] <= 2.0
    for _ in range(50):
        load.update(20)
    assert load.scale == MAX_PARTIAL_SCALE
