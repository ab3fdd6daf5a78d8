"""The streaming state machine without a model: VAD decisions and decode results in, segments out.

Unit tests of pure logic (endpointing, cuts, stabilisation, ids and finality, the session joining
them), so the decode results are small frozen dataclasses written here; the whole file runs in well
under 5 s and loads no model (the session is driven with ``skip_vad`` or the endpointer directly).
"""

from __future__ import annotations

import numpy as np
import pytest

from audio_service.schema import SAMPLE_RATE
from audio_service.streaming.commits import COMMIT_MARGIN_S, MIN_EVIDENCE_S, Commits
from audio_service.streaming.cuts import CUT_CONTEXT, CUT_CONTEXT_WAIT_S, CutEdges, norm, repeated_lead
from audio_service.streaming.endpointing import Endpointer
from audio_service.streaming.protocol import StreamFinishedError
from audio_service.streaming.session import StreamSession
from audio_service.streaming.stabilize import MIN_PARTIAL_S, Hypothesis
from audio_service.streaming.transcript import Shown, StreamTranscript
from audio_service.streaming.values import Checkpoint, SessionConfig, StreamOptions, Trace
from audio_service.vad.params import VadParams
from audio_service.vad.streaming import WINDOW
from audio_service.whisper.types import DecodedWord, DecodeResult

SR = SAMPLE_RATE
PAD = 200 * SR // 1000  # VadParams().speech_pad_ms


def words(*spec: tuple[str, float, float]) -> tuple[DecodedWord, ...]:
    """Decoded words from (text, start, end); tokens are made up but distinct per word."""
    return tuple(DecodedWord(w, s, e, 0.9, (1000 + i,)) for i, (w, s, e) in enumerate(spec))


def result(*spec: tuple[str, float, float], language: str = "en") -> DecodeResult:
    ws = words(*spec)
    return DecodeResult("".join(w.word for w in ws).strip(), ws, language, 0.01, -0.2)


def run_vad(ep: Endpointer, probs: list[float], start: int = 0) -> int:
    """Feed one probability per window from ``start``; returns the position after the last window."""
    pos = start
    for p in probs:
        ep.step(pos, p, held_from=0)
        pos += WINDOW
    return pos


def windows(seconds: float) -> int:
    return int(seconds * SR) // WINDOW


# --- endpointing ------------------------------------------------------------------------------------


def test_speech_then_silence_closes_one_padded_segment():
    ep = Endpointer(VadParams(), SessionConfig())
    speech_at = windows(1.0) * WINDOW
    end = run_vad(ep, [0.0] * windows(1.0) + [0.9] * windows(3.0))
    assert ep.open is not None and ep.open.start == speech_at - PAD and not ep.pending
    silence_at = end
    run_vad(ep, [0.05] * windows(0.6), end)  # 3 s of speech: the 500 ms endpoint applies
    assert ep.open is None and len(ep.pending) == 1
    seg = ep.pending[0]
    assert (seg.span.start, seg.span.end) == (speech_at - PAD, silence_at + PAD)
    assert ep.floor == seg.span.end and ep.final_ready(received=seg.span.end + SR, finished=False)


def test_early_end_is_where_the_segment_will_close():
    ep = Endpointer(VadParams(), SessionConfig())
    end = run_vad(ep, [0.9] * windows(3.0))
    assert ep.early_end(end) is None, "speech goes on"
    silence_at = end
    end = run_vad(ep, [0.0] * (PAD // WINDOW), end)
    assert ep.early_end(end) is None, "the padding after the speech is not received yet"
    end = run_vad(ep, [0.0] * 2, end)
    early = ep.early_end(end)
    assert early == silence_at + PAD
    run_vad(ep, [0.0] * windows(0.4), end)  # the 500 ms endpoint
    assert ep.open is None and ep.pending[0].span.end == early

    # a short phrase's endpoint is 1.5 s away: no early pass until EARLY_FINAL_LEAD_S before it
    ep = Endpointer(VadParams(), SessionConfig(short_segment_s=2.0, short_endpoint_s=1.5))
    silence_at = run_vad(ep, [0.9] * windows(1.0))
    end = run_vad(ep, [0.0] * windows(0.5), silence_at)
    assert ep.early_end(end) is None
    end = run_vad(ep, [0.0] * windows(0.3), end)
    assert ep.early_end(end) == silence_at + PAD


def test_short_phrase_waits_longer_and_a_click_is_dropped():
    ep = Endpointer(VadParams(), SessionConfig(short_segment_s=2.0, short_endpoint_s=1.5))
    end = run_vad(ep, [0.9] * windows(1.0))
    end = run_vad(ep, [0.0] * windows(1.0), end)
    assert ep.open is not None, "a short phrase is still open after 1 s of silence"
    run_vad(ep, [0.0] * windows(0.6), end)
    assert ep.open is None and len(ep.pending) == 1

    ep = Endpointer(VadParams(), SessionConfig())
    end = run_vad(ep, [0.9] * 3)  # 96 ms < min_speech_duration_ms
    run_vad(ep, [0.0] * windows(2.0), end)
    assert ep.open is None and not ep.pending


def test_over_long_segment_is_cut_at_its_quietest_window():
    ep = Endpointer(VadParams(), SessionConfig(max_segment_s=5.0))
    probs = [0.9] * windows(5.2)
    quiet = windows(3.5)
    probs[quiet] = 0.3  # below threshold, above the off threshold: no silence starts
    run_vad(ep, probs)
    assert len(ep.pending) == 1 and ep.open is not None
    cut = quiet * WINDOW + WINDOW // 2
    assert ep.pending[0].span.end == cut and ep.open.start == cut and ep.open.span.first_speech == cut
    assert all(pos >= cut for pos, _ in ep.open.span.probs)


def test_skip_vad_segments_end_at_the_maximum_length():
    ep = Endpointer(VadParams(), SessionConfig(max_segment_s=2.0))
    ep.step_without_vad(0, SR, 0)
    assert ep.open is not None and ep.open.start == 0
    ep.step_without_vad(SR, 2 * SR, 0)
    assert ep.open is None and ep.pending[0].span.end == 2 * SR


def test_checkpoint_cut_decodes_both_sides_across_it():
    ep = Endpointer(VadParams(), SessionConfig())
    end = run_vad(ep, [0.9] * windows(2.0))
    ep.checkpoint(end, lookahead=True)
    before = ep.pending[0]
    assert before.span.end == end and before.edges.cut_end == end and before.edges.audio_end == end + CUT_CONTEXT
    assert ep.oldest_needed(end) == before.start
    # the audio after the cut has not arrived: the final pass waits for it, at most CUT_CONTEXT_WAIT_S
    assert not ep.final_ready(received=end, finished=False, now=before.span.closed_at)
    assert ep.final_ready(received=end, finished=False, now=before.span.closed_at + CUT_CONTEXT_WAIT_S)
    assert ep.final_ready(received=end, finished=True, now=before.span.closed_at)
    assert ep.final_ready(received=end + CUT_CONTEXT, finished=False, now=before.span.closed_at)
    run_vad(ep, [0.9] * 4, end)  # speech goes on right after the cut
    after = ep.open
    assert after is not None and after.start == end and after.edges.cut_start == end
    assert after.decode_from == end - CUT_CONTEXT and ep.cut is None
    assert ep.before(end + 1) and not Endpointer(VadParams(), SessionConfig()).before(end)


def test_final_checkpoint_does_not_wait_for_audio_after_it():
    ep = Endpointer(VadParams(), SessionConfig())
    end = run_vad(ep, [0.9] * windows(1.0))
    ep.checkpoint(end, lookahead=False)
    assert ep.pending[0].edges.audio_end is None and ep.final_ready(received=end, finished=False)
    assert ep.oldest_needed(end) == ep.pending[0].start


# --- cuts -------------------------------------------------------------------------------------------


def test_words_go_to_the_side_of_the_cut_their_midpoint_is_on():
    cut = 2 * SR
    before, after = CutEdges(), CutEdges.after_cut(cut, cut, held_from=0)
    before.end_at_cut(cut, lookahead=True)
    assert (before.audio_end, after.audio_start) == (cut + CUT_CONTEXT, cut - CUT_CONTEXT)
    r = result((" ask", 1.0, 1.4), (" not", 1.5, 1.9), (" what", 2.0, 2.5), (" your", 2.6, 2.9))
    kept, speakers = before.clip(r, ["A", "A", "B", "B"])
    assert kept.text == "ask not what" and speakers == ["A", "A", "B"]  # "what" is within the tolerance
    before.hand_over(kept, after)
    assert after.lead_words == ("ask", "not", "what")
    kept, _ = after.clip(r, None)
    assert kept.text == "your"  # "not" is within the tolerance; it and "what" repeat the end before the cut
    assert repeated_lead(("a", "b", "c"), ["b", "c", "d"]) == 2 and repeated_lead(("a",), ["b"]) == 0
    assert norm(" Don't!") == "don't"


def test_clip_clamps_the_first_word_to_the_cut_and_leaves_uncut_segments_alone():
    after = CutEdges.after_cut(2 * SR, 2 * SR, held_from=0)
    kept, _ = after.clip(result((" country", 1.95, 2.4)), None)
    assert kept.words[0].start == 2.0
    plain = result((" hello", 0.1, 0.5))
    assert CutEdges().clip(plain, ["A"]) == (plain, ["A"])


# --- stabilisation ----------------------------------------------------------------------------------


class Model:
    """The session only hands its model to the engine; this stands in for it."""


MODEL = Model()


def test_local_agreement_locks_the_agreed_words_but_never_all():
    hyp, edges, shown, t = Hypothesis(0), CutEdges(), Shown(), StreamTranscript(None, True, 200)

    def take(r: DecodeResult, end: int) -> DecodeResult | None:
        new = hyp.take(r, end, MODEL, edges, shown.text)
        if new is not None:
            t.partial(shown, new, 0, hyp.decoded_end)
        return new

    shown_now = take(result((" ask", 0.1, 0.4), (" knot", 0.5, 0.8)), SR)
    assert shown_now is not None and shown_now.text == "ask knot" and hyp.locked == () and hyp.decoded_end == SR
    shown_now = take(result((" ask", 0.1, 0.4), (" not", 0.5, 0.8), (" what", 0.9, 1.2)), 2 * SR)
    assert shown_now is not None and hyp.locked == (1000,) and hyp.text_changed_at == 2 * SR
    # the same text again: nothing to show, the lock covers what two hypotheses agree on
    assert take(result((" ask", 0.1, 0.4), (" not", 0.5, 0.8), (" what", 0.9, 1.2)), 3 * SR) is None
    assert hyp.locked == (1000,) and hyp.text_changed_at == 2 * SR  # never the whole hypothesis
    shown_now = take(result((" ask", 0.1, 0.4), (" not", 0.5, 0.8), (" what", 0.9, 1.2), (" you", 1.3, 1.5)), 4 * SR)
    assert shown_now is not None and shown_now.text == "ask not what you" and hyp.locked == (1000, 1001, 1002)
    assert shown.text == "ask not what you" and hyp.prefix_for(MODEL) == hyp.locked and hyp.prefix_for(Model()) == ()
    assert not hyp.timed_out(3 * SR, 5.0) and hyp.timed_out(7 * SR, 1.0)


def test_partial_is_due_after_the_interval_or_when_a_marker_waits():
    hyp = Hypothesis(0)
    assert not hyp.due(0, 0, int(MIN_PARTIAL_S * SR) - 1, 0.5, None)
    assert hyp.due(0, 0, SR, 0.5, None)
    hyp.submit(SR)
    assert not hyp.due(0, 0, SR + SR // 10, 0.5, None)
    assert hyp.due(0, 0, SR + SR // 10, 0.5, marker_at=SR + SR // 10)


# --- ids, finality, context -------------------------------------------------------------------------


def test_ids_are_given_on_first_text_and_kept_when_final():
    t = StreamTranscript(None, word_timestamps=True, context_chars=12)
    silent, first, second = Shown(), Shown(), Shown()
    assert t.final(silent, result(), None, 0, SR) == [] and silent.id is None
    p = t.partial(first, result((" hello", 1.1, 1.5)), SR, 2 * SR)
    assert (p.id, p.is_final) == (0, False) and t.partial(first, result((" hello there", 1.1, 1.9)), SR, 2 * SR).id == 0
    [f] = t.final(first, result((" hello", 1.1, 1.5), (" there", 1.6, 1.9), language="de"), None, SR, 2 * SR)
    assert (f.id, f.is_final, f.text, f.start, f.end) == (0, True, "hello there", 1.1, 1.9)
    assert t.language == "de" and t.context == "hello there"
    [g] = t.final(second, result((" general", 3.1, 3.5), (" kenobi", 3.6, 4.0), language="de"), None, 3 * SR, 4 * SR)
    assert g.id == 1 and t.context == "kenobi"  # trimmed to context_chars, whole words


def test_a_view_without_words_spans_the_segment():
    t = StreamTranscript("en", word_timestamps=True, context_chars=200)
    [f] = t.final(Shown(), DecodeResult("hm", (), "en", 0.01, -0.2), None, SR, 2 * SR)
    assert (f.start, f.end, f.words) == (1.0, 2.0, ())


def test_a_final_in_another_language_switches_the_stream_and_drops_the_old_context():
    t = StreamTranscript(None, word_timestamps=True, context_chars=200)
    [f] = t.final(Shown(), result((" hello", 0.1, 0.5), language="en"), None, 0, SR)
    [g] = t.final(Shown(), result((" guten", 1.1, 1.5), (" Tag", 1.6, 1.9), language="de"), None, SR, 2 * SR)
    assert (f.language, g.language, t.language) == ("en", "de", "de")
    assert t.context == "guten Tag"  # English text would pull the decoder back into English


def test_a_final_segment_splits_where_the_speaker_changes():
    t = StreamTranscript("en", word_timestamps=False, context_chars=200)
    shown = Shown()
    t.partial(shown, result((" hi", 0.1, 0.3)), 0, SR)
    views = t.final(shown, result((" hi", 0.1, 0.3), (" there", 0.4, 0.6), (" yes", 1.0, 1.2)), ["A", "A", "B"], 0, 2 * SR)
    assert [(v.id, v.text, v.speaker_id, v.is_final, v.words) for v in views] == [
        (0, " hi there", "A", True, ()),
        (1, " yes", "B", True, ()),
    ]
    assert shown.view == views[0] and t.next_id == 2


# --- the session joining the parts (skip_vad: no VAD model) -----------------------------------------


def make_session(**options):
    out = []
    s = StreamSession(
        StreamOptions(skip_vad=True, **{"language": "en", **options}), Model(), SessionConfig(max_segment_s=5.0), out.append
    )
    return s, out


def test_session_partial_final_and_checkpoint():
    s, out = make_session()
    s.feed(np.zeros(SR, np.float32))
    assert s.has_work(final=False) and not s.has_work(final=True)
    job = s.next_job(final=False)
    assert job is not None and job.request.offset == 0.0 and len(job.request.samples) == SR
    assert not s.has_work(final=False), "one job at a time per stream"
    s.mark(Trace("t1"))
    s.complete(job, result((" ask", 0.1, 0.5)))
    assert out[0]["segments"][0]["id"] == 0 and out[0]["segments"][0]["is_final"] is False
    assert out[1]["trace_id"] == "t1" and out[1]["lag_s"] == 0.0
    s.feed(np.zeros(SR // 2, np.float32))
    s.mark(Checkpoint("final"))
    assert s.finished and not s.has_work(final=False) and s.has_work(final=True)
    job = s.next_job(final=True)
    assert job.request.beam_size == 5 and job.request.prefix_tokens == () and job.end == SR + SR // 2
    s.complete(job, result((" ask", 0.1, 0.5), (" not", 0.6, 1.2)))
    assert out[2]["segments"][0] == {**out[2]["segments"][0], "id": 0, "text": "ask not", "is_final": True}
    assert out[3] == {"checkpoint_id": "final"} and len(out) == 4
    assert s.lag_s() == 0.0 and s.backlog_s() <= CUT_CONTEXT / SR  # only the context of the last cut is held
    with pytest.raises(StreamFinishedError):
        s.feed(np.zeros(10, np.float32))


class LoudnessVad:
    """Stands in for Silero in session tests: a window is speech when its samples are loud."""

    position = 0

    def push(self, samples: np.ndarray) -> np.ndarray:
        n = len(samples) // WINDOW
        self.position += n * WINDOW
        return (np.abs(samples[: n * WINDOW]).reshape(-1, WINDOW).mean(axis=1) > 0.1).astype(np.float32) * 0.9


def vad_session(**config):
    out = []
    s = StreamSession(StreamOptions(language="en"), Model(), SessionConfig(**config), out.append, vad=LoudnessVad())
    return s, out


def speech(seconds: float) -> np.ndarray:
    return np.full(int(seconds * SR) // WINDOW * WINDOW, 0.5, np.float32)


def quiet(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SR) // WINDOW * WINDOW, np.float32)


def test_early_final_pass_is_the_final_at_the_endpoint():
    s, out = vad_session()
    s.feed(speech(3.0))
    s.feed(quiet(0.3))  # the speech stopped and its padding is in: the final pass may start
    job = s.next_job(final=True)
    assert job is not None and job.early and job.request.beam_size == 5 and job.segment.span.end is None, "still open"
    s.complete(job, result((" ask", 0.1, 0.5), (" not", 0.6, 2.9)))
    assert not out and not s.has_work(final=True), "not final before the endpoint, and one early pass per silence"
    s.feed(quiet(0.3))  # the endpoint: final at once, from the early pass
    assert out[-1]["segments"][0]["is_final"] and out[-1]["segments"][0]["text"] == "ask not"
    assert not s.has_work(final=True) and s.backlog_s() == 0.0


def test_early_final_pass_is_dropped_when_speech_resumes():
    s, out = vad_session()
    s.feed(speech(3.0))
    s.feed(quiet(0.3))
    job = s.next_job(final=True)
    s.feed(speech(1.0))  # the pause was inside the sentence
    s.complete(job, result((" ask", 0.1, 0.5)))
    s.feed(quiet(0.3))
    again = s.next_job(final=True)
    assert again.early and again.end > job.end, "a new early pass for the new silence"
    s.complete(again, result((" ask", 0.1, 0.5), (" not", 3.5, 3.9)))
    s.feed(quiet(0.3))
    assert [seg["text"] for m in out for seg in m["segments"] if seg["is_final"]] == ["ask not"]

    # while streams wait for the model: only the endpoint's final pass
    s, _ = vad_session()
    s.follow_load(lambda: 1.5)
    s.feed(speech(3.0))
    s.feed(quiet(0.3))
    assert not s.has_work(final=True)
    s.feed(quiet(0.3))
    job = s.next_job(final=True)
    assert not job.early and job.end == job.segment.span.end


def test_session_context_and_language_reach_the_next_request():
    s, out = make_session(language=None, prompt="Names: Kenobi.")
    s.feed(np.zeros(5 * SR, np.float32))  # the maximum length closes the segment
    job = s.next_job(final=True)
    s.complete(job, result((" hello", 0.1, 0.5), language="fr"))
    s.feed(np.zeros(SR, np.float32))
    job = s.next_job(final=False)
    assert (job.request.language, job.request.context_text, job.request.prompt_text) == ("fr", "hello", "Names: Kenobi.")
    assert job.request.offset == 5.0
    s.fail(RuntimeError("boom"))
    assert isinstance(out[-1], RuntimeError)
    s.close()
    assert s.next_job(final=False) is None


# --- word-level commits -----------------------------------------------------------------------------


def said(*spec: tuple[str, float, float]) -> DecodeResult:
    """A hypothesis whose tokens are the same for the same word (as a model's are): one per word."""
    ws = tuple(DecodedWord(w, s, e, 0.9, (2000 + sum(map(ord, w)),)) for w, s, e in spec)
    return DecodeResult("".join(w.word for w in ws).strip(), ws, "en", 0.01, -0.2)


def test_a_word_is_committed_when_two_hypotheses_agree_on_it_away_from_the_audio_edge():
    c = Commits()
    assert c.observe(said((" And", 0.1, 0.4), (" so", 0.5, 0.8)), end=SR) == 0, "one hypothesis is no evidence"
    # the next one agrees on "And" and "so"; "so" ends within the margin of its audio end: it waits
    h2 = said((" And", 0.1, 0.4), (" so", 0.5, 1.3 - COMMIT_MARGIN_S + 0.05), (" my", 1.3, 1.4))
    assert c.observe(h2, end=int(1.3 * SR)) == 1 and [w.word for w in c.words] == [" And"]
    assert c.tokens == h2.words[0].tokens and c.until == int(0.4 * SR)
    # punctuation is part of the word: "so" and "so," differ, so nothing more is committed ...
    assert c.observe(said((" And", 0.1, 0.4), (" so,", 0.5, 0.9), (" my", 1.3, 1.5)), end=2 * SR) == 0
    # ... until two hypotheses agree again; a hypothesis that dropped the committed prefix is no evidence
    assert c.observe(said((" so,", 0.5, 0.9)), end=2 * SR) == 0
    assert c.observe(said((" And", 0.1, 0.4), (" so,", 0.5, 0.9), (" my", 1.3, 1.5)), end=2 * SR) == 0
    assert c.observe(said((" And", 0.1, 0.42), (" so,", 0.5, 0.95), (" my", 1.3, 1.6), (" fellow", 1.7, 1.9)), end=2 * SR) == 2
    assert [(w.word, w.end) for w in c.words] == [(" And", 0.4), (" so,", 0.95), (" my", 1.6)], "times of the commit, kept"


def test_the_older_hypothesis_last_word_may_differ_in_punctuation_only():
    c = Commits()
    c.observe(said((" my", 0.1, 0.4), (" fellow", 0.5, 0.8), (" Americans.", 0.9, 1.4)), end=int(1.5 * SR))
    # Whisper ended the older hypothesis with a full stop where its audio ended; the newer one goes on
    n = c.observe(said((" my", 0.1, 0.4), (" fellow", 0.5, 0.8), (" Americans,", 0.9, 1.4), (" ask", 1.8, 2.0)), end=2 * SR)
    assert n == 3 and c.words[-1].word == " Americans,"
    c = Commits()
    c.observe(said((" my", 0.1, 0.4), (" fellow", 0.5, 0.8)), end=int(1.5 * SR))
    assert c.observe(said((" my", 0.1, 0.4), (" fellows", 0.5, 0.8), (" ask", 1.8, 2.0)), end=2 * SR) == 1, "another word"
    c = Commits()
    c.observe(said((" my", 0.1, 0.4), (" fellow.", 0.5, 0.8)), end=int(1.5 * SR))
    assert c.observe(said((" my", 0.1, 0.4), (" fellow,", 0.5, 0.8)), end=2 * SR) == 1, "nor the newer one's last word"


def test_settle_keeps_the_committed_words_whatever_the_final_pass_made_of_them():
    c = Commits()
    h = said((" ask", 0.1, 0.4), (" not", 0.5, 0.8), (" what", 0.9, 1.1), (" your", 1.2, 1.4))
    c.observe(h, end=2 * SR)
    c.observe(h, end=2 * SR)
    assert [w.word for w in c.words] == [" ask", " not", " what"], "never a hypothesis' last word"
    ask, no, what = c.words
    # the final pass re-aligned the forced prefix (other times): the committed words stay as they were
    final = said((" ask", 0.0, 0.5), (" not", 0.5, 0.9), (" what", 0.9, 1.2), (" your", 1.3, 1.5))
    settled = c.settle(final)
    assert settled.words[:3] == (ask, no, what) and settled.words[3] == final.words[3] and settled.text == "ask not what your"
    # punctuation after the last committed word joined it in the final pass: kept as a word of its own
    comma = DecodedWord(" what,", 0.9, 1.2, 0.8, (*what.tokens, 11))
    settled = c.settle(DecodeResult("", (ask, no, comma, final.words[3]), "en", 0.0, 0.0))
    assert [w.word for w in settled.words] == [" ask", " not", " what", ",", " your"] and settled.text == "ask not what, your"
    # a decode without the prefix (an early pass taken before the commits): its words after the committed ones
    early = said((" ask", 0.1, 0.4), (" knot", 0.5, 0.8), (" what", 0.9, 1.15), (" your", 1.3, 1.5))
    assert [w.word for w in c.settle(early).words] == [" ask", " not", " what", " your"]
    assert c.settle(DecodeResult("", (), "en", 0.9, -2.0)).text == "ask not what", "a decode that lost everything"


class Draft(Model):
    multilingual = False  # an English-only draft: used once the stream is known to be English


def commit_session(**config):
    out = []
    cfg = SessionConfig(max_segment_s=5.0, **{"commit_words": True, **config})
    s = StreamSession(StreamOptions(skip_vad=True, language="en"), Model(), cfg, out.append, draft=Draft())
    return s, out


def partial(s: StreamSession, *spec: tuple[str, float, float]):
    job = s.next_job(final=False)
    assert job is not None
    s.complete(job, said(*spec))
    return job


def drafted(*spec: tuple[str, float, float]) -> DecodeResult:
    """A hypothesis of the draft model: its own vocabulary (other tokens for the same words)."""
    ws = tuple(DecodedWord(w, s, e, 0.9, (9000 + sum(map(ord, w)),)) for w, s, e in spec)
    return DecodeResult("".join(w.word for w in ws).strip(), ws, "en", 0.01, -0.2)


def test_the_draft_confirms_words_of_the_own_model_and_the_own_words_are_committed():
    c = Commits()
    own = said((" And", 0.1, 0.4), (" so,", 0.5, 0.8), (" my", 0.9, 1.1))
    assert c.observe(own, end=int(1.2 * SR)) == 0
    # the draft agrees on "and so" (case and punctuation aside): the own model's words are committed, not
    # its last one ("my"), which the draft has but nothing after it
    n = c.observe(drafted((" and", 0.2, 0.5), (" so", 0.6, 0.9), (" my", 1.0, 1.2)), end=int(1.6 * SR), own=False)
    assert n == 2 and c.words == own.words[:2]
    # the next own hypothesis, forced with the own tokens, agrees with the draft on "my"; the draft then is
    # forced with the committed words' text, in its own vocabulary
    assert c.text == " And so,"
    assert c.observe(said((" And", 0.1, 0.4), (" so,", 0.5, 0.8), (" my", 0.9, 1.1), (" fellow", 1.2, 1.5)), end=2 * SR) == 1
    # a draft hypothesis that does not start with the committed words is no evidence
    other = drafted((" Ann", 0.2, 0.5), (" so", 0.6, 0.9), (" my", 1.0, 1.2), (" fellow", 1.3, 1.6))
    assert c.observe(other, end=3 * SR, own=False) == 0


def test_an_own_hypothesis_is_also_checked_against_the_own_one_before_the_draft():
    c = Commits()
    c.observe(said((" Ask", 0.1, 0.4), (" not", 0.5, 0.8), (" what", 0.9, 1.1)), end=int(1.2 * SR))
    # the draft misheard the words: nothing to commit against it ...
    assert c.observe(drafted((" As", 0.1, 0.4), (" question", 0.5, 1.0)), end=int(1.6 * SR), own=False) == 0
    # ... but the own model's next hypothesis agrees with its previous one (one model: exact text)
    assert c.observe(said((" Ask", 0.1, 0.4), (" not", 0.5, 0.8), (" what", 0.9, 1.1), (" your", 1.2, 1.5)), end=2 * SR) == 3


def test_the_draft_confirms_the_own_hypothesis_last_word_only_as_it_spells_it():
    c = Commits()
    c.observe(said((" my", 0.1, 0.4), (" fellow", 0.5, 0.8), (" Americans.", 0.9, 1.3)), end=int(1.8 * SR))
    # Whisper's full stop at the end of the own hypothesis is a guess the draft does not confirm ...
    draft = drafted((" my", 0.1, 0.4), (" fellow", 0.5, 0.8), (" Americans", 0.9, 1.3), (" ask", 1.9, 2.2))
    n = c.observe(draft, end=int(2.4 * SR), own=False)
    assert n == 2 and [w.word for w in c.words] == [" my", " fellow"]
    c = Commits()
    c.observe(said((" my", 0.1, 0.4), (" fellow", 0.5, 0.8), (" Americans,", 0.9, 1.3)), end=int(1.8 * SR))
    # ... where the draft goes on after the same word spelled alike, it does
    draft = drafted((" my", 0.1, 0.4), (" fellow", 0.5, 0.8), (" Americans,", 0.9, 1.3), (" ask", 1.9, 2.2))
    assert c.observe(draft, end=int(2.4 * SR), own=False) == 3


def test_in_a_pause_the_newest_hypothesis_last_word_is_committed_too():
    h = said((" for", 0.1, 0.4), (" your", 0.5, 0.7), (" country.", 0.8, 1.2))
    for pause, committed in ((False, 2), (True, 3)):
        c = Commits()
        c.observe(h, end=int(1.6 * SR))
        # the VAD heard the speech end before this hypothesis' end: nothing follows "country." to wait for
        assert c.observe(h, end=int(1.8 * SR), pause=pause) == committed
    c = Commits()
    c.observe(h, end=int(1.3 * SR))
    assert c.observe(h, end=int(1.3 * SR), pause=True) == 2, "still not within the margin of the audio's end"


def test_a_hypothesis_of_a_short_window_is_no_evidence():
    c = Commits()
    start = 10 * SR
    h = said((" like", 10.1, 10.4), (" your", 10.4, 10.5), (" country", 10.5, 10.55))
    end = start + int((MIN_EVIDENCE_S - 0.1) * SR)
    assert c.observe(h, end=end, start=start) == 0
    draft = drafted((" like", 10.1, 10.4), (" your", 10.4, 10.5), (" country", 10.5, 10.7))
    assert c.observe(draft, end=start + SR, own=False, start=start) == 0
    assert not c.words, "the short window was no evidence, so the draft had nothing to agree with"


def test_session_commits_words_final_on_the_word_and_keeps_them_through_the_final_pass():
    s, out = commit_session()
    s.feed(np.zeros(SR, np.float32))
    job = partial(s, (" ask", 0.1, 0.4), (" not", 0.5, 0.9))
    assert job.model is s.draft, "a segment's first partial runs on the draft"
    s.feed(np.zeros(SR // 2, np.float32))
    job = s.next_job(final=False)
    assert job.model is s.model, "then the partials take turns: the own model's tokens are the final pass's prefix"
    s.complete(job, said((" ask", 0.1, 0.4), (" not", 0.5, 0.9), (" what", 1.0, 1.4)))
    seg = out[-1]["segments"][0]
    assert [(w["word"], w["is_final"]) for w in seg["words"]] == [("ask", True), ("not", True), ("what", False)]
    assert not seg["is_final"]
    s.feed(np.zeros(SR // 2, np.float32))
    job = s.next_job(final=False)
    # the draft is forced with the committed words' text (its vocabulary is not the own model's)
    assert job.model is s.draft and job.request.prefix_tokens == () and job.request.prefix_text == " ask not"
    s.complete(job, drafted((" ask", 0.1, 0.4), (" not", 0.5, 0.9), (" what", 1.0, 1.45), (" your", 1.5, 1.8)))
    committed = [w for w in out[-1]["segments"][0]["words"] if w["is_final"]]
    assert [w["word"] for w in committed] == ["ask", "not", "what"], "the draft went on after 'what', spelled alike"
    assert committed[-1]["end"] == 1.4, "the own model's word (and time) is committed"
    s.feed(np.zeros(SR // 2, np.float32))
    job = s.next_job(final=False)
    # only the committed words are forced (not the words the hypotheses agreed on beyond them)
    assert job.model is s.model
    forced = said((" ask", 0, 0), (" not", 0, 0), (" what", 0, 0))
    assert job.request.prefix_tokens == tuple(t for w in forced.words for t in w.tokens)
    s.complete(job, said((" ask", 0.1, 0.4), (" not", 0.5, 0.9), (" what", 1.0, 1.45), (" your", 1.5, 1.8)))
    s.mark(Checkpoint("final"))
    job = s.next_job(final=True)
    assert job.request.prefix_tokens == job.segment.commits.tokens and len(job.segment.commits.words) == 3
    s.complete(job, said((" ask", 0.0, 0.5), (" not", 0.5, 1.0), (" what", 1.0, 1.5), (" your", 1.5, 1.9)))
    final = out[-2]["segments"][0]
    assert final["is_final"] and final["text"] == "ask not what your"
    assert final["words"][: len(committed)] == committed, "committed words never change"


def test_a_committing_segment_takes_no_early_final_pass():
    for commit_words in (True, False):
        s, _ = commit_session(commit_words=commit_words)
        s.feed(np.zeros(SR, np.float32))
        partial(s, (" ask", 0.1, 0.4), (" not", 0.5, 0.9))
        s._ep.early_due = lambda received: received  # an early pass would be due now (the silence it waits for)
        assert s.has_work(final=True) is not commit_words


def test_session_without_commits_uses_the_draft_and_commits_nothing():
    s, out = commit_session(commit_words=False)
    s.feed(np.zeros(SR, np.float32))
    assert partial(s, (" ask", 0.1, 0.4), (" not", 0.5, 0.9)).model is s.draft
    s.feed(np.zeros(SR // 2, np.float32))
    partial(s, (" ask", 0.1, 0.4), (" not", 0.5, 0.9), (" what", 1.0, 1.4))
    assert not any(w["is_final"] for w in out[-1]["segments"][0]["words"])


def test_a_long_segment_is_never_cut_before_its_last_committed_word():
    ep = Endpointer(VadParams(), SessionConfig(max_segment_s=5.0))
    run_vad(ep, [0.9] * windows(3.0) + [0.6] * windows(0.5) + [0.9] * windows(1.0))
    seg = ep.open
    assert seg is not None
    seg.commits.observe(said((" a", 0.5, 3.9), (" b", 4.0, 4.1)), end=5 * SR)
    seg.commits.observe(said((" a", 0.5, 3.9), (" b", 4.0, 4.1)), end=5 * SR)
    run_vad(ep, [0.9] * windows(1.0), start=windows(4.5) * WINDOW)  # the quiet part (3-3.5 s) is before "a" ends
    assert ep.pending and ep.pending[0].span.end >= seg.commits.until
