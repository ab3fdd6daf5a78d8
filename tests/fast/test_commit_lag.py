"""The per-word commit lag of ``bench/streaming.py`` on a hand-made message list (no server, no model)."""

from __future__ import annotations

import pytest

from tests.stream_client import StreamResult, commit_lags, first_commit


def _word(word: str, end: float, final: bool) -> dict:
    return {"word": word, "start": end - 0.3, "end": end, "probability": 0.9, "is_final": final}


def _seg(sid: int, words: list[dict], final: bool) -> dict:
    text = " ".join(w["word"] for w in words)
    return {"id": sid, "text": text, "start": 0.0, "end": words[-1]["end"], "is_final": final, "words": words}


def test_commit_lag_per_word() -> None:
    r = StreamResult()
    r.sent_audio = [(0.1 * i, 0.1 * i) for i in range(1, 41)]  # 100 ms frames at real time: frame i sent at i/10 s
    # segment 0: a partial, then "and" committed alone (word-level), then the whole segment final
    r.merge(1.2, {"segments": [_seg(0, [_word("And", 0.5, False), _word("so", 0.8, False)], False)]})
    r.merge(1.5, {"segments": [_seg(0, [_word("And", 0.5, True), _word("so,", 0.9, False)], False)]})
    r.merge(2.4, {"segments": [_seg(0, [_word("And", 0.5, True), _word("so,", 0.9, True), _word("my", 1.3, True)], True)]})
    # segment 1: never final on a word before the segment; a punctuation-only word is not a word
    r.merge(3.0, {"segments": [_seg(1, [_word("fellow", 2.5, False)], False)]})
    r.merge(3.8, {"segments": [_seg(1, [_word("fellow", 2.6, True), _word("-", 2.7, True)], True)]})
    r.merge(3.9, {"checkpoint_id": "final"})
    # the end time is the final word's, and the lag counts from the frame holding that end
    assert first_commit(r) == [("And", 0.5, 1.5), ("so,", 0.9, 2.4), ("my", 1.3, 2.4), ("fellow", 2.6, 3.8)]
    assert commit_lags(r) == pytest.approx([1.0, 1.5, 1.1, 1.2])


def test_commit_before_the_end_is_sent_counts_as_zero() -> None:
    r = StreamResult()
    r.sent_audio = [(1.0, 1.0), (2.0, 2.0)]
    r.merge(0.5, {"segments": [_seg(0, [_word("hi", 1.5, True)], True)]})
    assert commit_lags(r) == [0.0]


def test_whisperlivekit_commit_lag_from_its_lines() -> None:
    from bench.peers import committed_word_times, peer_commit_lags

    r = StreamResult()
    r.sent_audio = [(0.1 * i, 0.1 * i) for i in range(1, 41)]
    r.messages = [
        (1.0, {"type": "config"}),
        (1.2, {"lines": [], "buffer_transcription": "And so"}),
        (1.6, {"lines": [{"text": "And so", "start": "0:00:00.00"}], "buffer_transcription": "my fellow"}),
        (2.5, {"lines": [{"text": "And so, my"}], "buffer_transcription": "fellow"}),
        (3.4, {"lines": [{"text": "And so, my"}, {"text": "fellow Americans."}], "buffer_transcription": ""}),
        (3.5, {"type": "ready_to_stop"}),
    ]
    # the buffer is not committed; a word is committed from the first lines holding it at its position
    assert committed_word_times(r.messages) == (["and", "so", "my", "fellow", "americans"], [1.6, 1.6, 2.5, 3.4, 3.4])
    # ends come from the reference words, matched by alignment ("americans" is not in it: left out)
    ref = [("and", 0.5), ("so", 0.9), ("my", 1.3), ("fellow", 2.6), ("citizens", 3.0)]
    lags, text = peer_commit_lags(r, ref)
    assert text == "and so my fellow americans"
    assert lags == pytest.approx([1.1, 0.7, 1.2, 0.8])
