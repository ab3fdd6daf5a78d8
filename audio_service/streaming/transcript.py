"""Job and patch bookkeeping: segment ids, finality, the prompt context and the views a client is sent.

Ids are given when a segment first shows text, so they increase in time order without gaps. A final
segment is sent once with ``is_final: true``; when a speaker tracker labels its words with more than
one speaker it is split into one final segment per run of words. Pure logic, no model.

Each segment carries a :class:`Shown`, the state this module owns: its id and the view last sent;
:class:`StreamTranscript` holds the stream-wide rest (the next id, the language, the prompt context).
"""

from __future__ import annotations

from typing import Protocol

from audio_service.diarization.words import label_runs
from audio_service.schema import SAMPLE_RATE, Audio
from audio_service.streaming.values import SegmentView, WordView
from audio_service.whisper.types import DecodedWord, DecodeResult


class SpeakerLabeller(Protocol):
    """Labels each final segment with a speaker, consistently within one stream.

    Called on a worker thread (not the decode thread), once per final segment with text, in time
    order. ``audio`` is the segment's audio (with its VAD padding); ``start``/``end`` locate the
    segment's words inside it, in seconds from the start of ``audio``. A tracker that also has
    ``assign_words(audio, [(start, end), ...]) -> [label, ...]`` labels each word instead, and the
    final segment is split where the label changes (see :meth:`StreamTranscript.final`).
    """

    def assign(self, audio: Audio, start: float, end: float) -> str: ...


def speakers_of(tracker: SpeakerLabeller, audio: Audio, words: list[tuple[float, float]]) -> list[str]:
    """One label per word: a tracker that can label words (``assign_words``) does; else the whole span gets one."""
    assign_words = getattr(tracker, "assign_words", None)
    if assign_words is not None:
        return list(assign_words(audio, words))
    return [tracker.assign(audio, words[0][0], words[-1][1])] * len(words)


def _word_views(words: tuple[DecodedWord, ...] | list[DecodedWord], committed: int) -> tuple[WordView, ...]:
    """The views of ``words``, the first ``committed`` of them final."""
    return tuple(WordView(w.word.strip(), w.start, w.end, w.probability, i < committed) for i, w in enumerate(words))


class Shown:
    """What the client was shown of one segment: its id (given on its first text) and its newest view.
    Only :class:`StreamTranscript` changes it."""

    def __init__(self) -> None:
        self.id: int | None = None
        self.view: SegmentView | None = None

    @property
    def text(self) -> str | None:
        """The text shown last; None before the segment showed any."""
        return None if self.view is None else self.view.text


class StreamTranscript:
    """One stream's ids, language and prompt context; turns decode results into segment views.

    ``start``/``end`` arguments locate a segment (absolute samples) for a view with no words.
    """

    def __init__(self, language: str | None, word_timestamps: bool, context_chars: int) -> None:
        self.language = language  # the language of the last final segment (None: not heard yet)
        self.word_timestamps = word_timestamps
        self.context_chars = context_chars
        self.context = ""  # recent final text, the decoder's prompt for the next segment
        self.next_id = 0

    def take_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def partial(self, shown: Shown, result: DecodeResult, start: int, end: int, committed: int = 0) -> SegmentView:
        """The view of a changed partial hypothesis (the segment gets its id on its first text); its first
        ``committed`` words are final."""
        if shown.id is None:
            shown.id = self.take_id()
        shown.view = self._view(shown.id, result, start, end, final=False, committed=committed)
        return shown.view

    def final(self, shown: Shown, result: DecodeResult, speakers: list[str] | None, start: int, end: int) -> list[SegmentView]:
        """The final views of a segment (``result`` already clipped to it); none when it never showed
        and said nothing."""
        text = result.text
        if not text and shown.id is None:
            return []
        if shown.id is None:
            shown.id = self.take_id()
        self._remember(result)
        if speakers is None or not result.words or len(set(speakers)) == 1:
            shown.view = self._view(shown.id, result, start, end, final=True, speaker=speakers[0] if speakers else None)
            return [shown.view]
        return self._split(shown, result, speakers)

    def _remember(self, result: DecodeResult) -> None:
        """Keep a final's language and text for the prompt of the next segment."""
        if result.text and result.language != self.language:
            if self.language is not None:  # text in the previous language would pull the decoder back to it
                self.context = ""
            self.language = result.language
        context = (self.context + " " + result.text).strip()
        if len(context) > self.context_chars:  # keep whole words
            context = context[-self.context_chars :].split(" ", 1)[-1]
        self.context = context

    def _split(self, shown: Shown, result: DecodeResult, speakers: list[str]) -> list[SegmentView]:
        """Final segments, one per run of words of one speaker: the first keeps the segment's id, the
        rest take new ids. Ids stay in time order because no later segment has one yet: partials of
        the next segment wait until every closed segment is final."""
        views = []
        for i, (speaker, words) in enumerate(label_runs(speakers, result.words)):
            sid = shown.id if i == 0 else self.take_id()
            assert sid is not None
            text = "".join(w.word for w in words)
            words_shown = _word_views(words, len(words)) if self.word_timestamps else ()
            views.append(SegmentView(sid, text, words[0].start, words[-1].end, True, words_shown, speaker, result.language))
        shown.view = views[0]
        return views

    def _view(
        self, sid: int, result: DecodeResult, start: int, end: int, final: bool, speaker: str | None = None, committed: int = 0
    ) -> SegmentView:
        words = _word_views(result.words, len(result.words) if final else committed)
        start_s = words[0].start if words else start / SAMPLE_RATE
        end_s = words[-1].end if words else end / SAMPLE_RATE
        shown = words if self.word_timestamps else ()
        return SegmentView(sid, result.text, start_s, end_s, final, shown, speaker, result.language)
