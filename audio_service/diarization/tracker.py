"""Streaming diarization: session-consistent speaker labels, one final segment at a time.

Each new final segment is diarized *in context* by the offline diarizer (see :class:`SpeakerTracker`);
the streaming endpoint builds one tracker per session through :func:`speaker_tracker_factory`.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

import numpy as np

from audio_service.diarization.embedding import MIN_EMBED_SECONDS, embed_many
from audio_service.diarization.offline import OfflineDiarizer, SpeakerBounds
from audio_service.diarization.words import label_runs
from audio_service.schema import SAMPLE_RATE, Audio

MIN_RUN_SECONDS = 0.5  # a streaming segment is split at a speaker change only between runs this long


class SpeakerTracker:
    """Session-consistent speaker labels for a stream's final segments, one segment at a time.

    GE2E similarity of isolated segments separates speakers poorly, so each new segment is
    diarized *in context*: the tracker keeps the audio of the session's recent final segments
    (up to ``context_s`` seconds), runs the offline diarizer on those segments followed by the new
    one (joined back to back, as the stream had them), maps the diarizer's labels one-to-one onto the
    labels already given (the assignment that agrees most with past audio) and returns the label of
    each word of the new segment (:meth:`assign_words`; :meth:`assign` gives one label for a span).
    A speaker the mapping leaves unmatched takes the closest-sounding known label the diarizer
    matched to no one else, or a new label when every known label is taken. The history keeps each
    speaker's own stretch of a segment (split at the word where the label changes), so a segment
    holding both sides of a quick exchange does not blur later mappings. Past labels never change.
    One tracker per stream.
    """

    def __init__(
        self,
        diarizer: OfflineDiarizer,
        context_s: float = 40.0,
        max_speakers: int | None = None,
        gap_s: float = 0.0,
    ) -> None:
        self._diarizer = diarizer
        self._context_s = context_s
        self._max_speakers = max_speakers
        self._gap = np.zeros(int(gap_s * SAMPLE_RATE), dtype=np.float32)
        self._history: list[tuple[np.ndarray, str]] = []  # (samples, label) of past final segments
        self._count = 0
        self._lock = threading.Lock()

    def assign(self, audio: Audio, start: float, end: float) -> str:
        """The label of the speaker talking in ``audio`` between ``start`` and ``end`` (seconds)."""
        labels = self.assign_words(audio, [(start, end)])
        return labels[0]

    def assign_words(self, audio: Audio, words: list[tuple[float, float]]) -> list[str]:
        """One label per word (``(start, end)`` seconds into ``audio``, in time order) of one final segment.

        A VAD endpoint needs a pause, so one final segment often holds both sides of a quick
        exchange: labelling each word lets the caller split it where the speaker changes. Runs of
        words shorter than ``MIN_RUN_SECONDS`` join their neighbour (too short to tell apart).
        """
        t0, t1 = words[0][0], words[-1][1]
        piece = audio.slice(t0, t1).samples.astype(np.float32)
        local = [(max(0.0, a - t0), max(0.0, b - t0)) for a, b in words]
        with self._lock:
            labels = self._labels(piece, local) if len(piece) >= MIN_EMBED_SECONDS * audio.sample_rate else None
            if labels is None:  # too short to tell: most likely the previous speaker goes on
                labels = [self._history[-1][1] if self._history else self._new_label()] * len(words)
            labels = merge_short_runs(labels, local)
            # Remember each speaker's own stretch of the piece, so later mappings see clean labels.
            for (a, b), label in _runs(labels, local):
                self._history.append((piece[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)], label))
            self._trim()
            return labels

    def _labels(self, piece: np.ndarray, words: list[tuple[float, float]]) -> list[str] | None:
        from scipy.optimize import linear_sum_assignment

        from audio_service.diarization.words import speaker_for

        # the past speakers' stretches (labelled spans), then the piece from ``base``, each followed by a gap
        parts: list[np.ndarray] = []
        spans: list[tuple[float, float, str]] = []
        base = 0.0
        for samples, label in self._history:
            spans.append((base, base + len(samples) / SAMPLE_RATE, label))
            parts += [samples, self._gap]
            base += (len(samples) + len(self._gap)) / SAMPLE_RATE
        parts += [piece, self._gap]
        turns = self._diarizer(Audio(np.concatenate(parts)), SpeakerBounds(max_speakers=self._max_speakers))
        heard = [speaker_for(base + a, base + b, turns) for a, b in words]
        found_per_word = [f for f in heard if f is not None]
        if len(found_per_word) < len(heard):
            return None
        # Diarizer labels map one-to-one onto the session labels they share most past audio with.
        turns = [t for t in turns if not t.background]
        found = sorted({t.speaker for t in turns})
        known = sorted({label for _, _, label in spans})
        overlap = np.zeros((len(found), len(known)))
        for s0, s1, label in spans:
            for turn in turns:
                overlap[found.index(turn.speaker), known.index(label)] += max(0.0, min(s1, turn.end) - max(s0, turn.start))
        rows, cols = linear_sum_assignment(overlap, maximize=True)
        mapping = {found[r]: known[c] for r, c in zip(rows, cols, strict=True) if overlap[r, c] > 0}
        # A speaker the diarizer matched to no known label: a known label it did not match (e.g. one
        # heard only briefly) is the likelier one, else a new speaker.
        unclaimed = [label for label in known if label not in mapping.values()]
        for current in dict.fromkeys(found_per_word):
            if current in mapping:
                continue
            own = [
                piece[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)]
                for (a, b), f in zip(words, found_per_word, strict=True)
                if f == current
            ]
            if unclaimed:
                mapping[current] = self._closest_voice(np.concatenate(own), unclaimed)
                unclaimed.remove(mapping[current])
            else:
                mapping[current] = self._new_label()
        return [mapping[f] for f in found_per_word]

    def _closest_voice(self, piece: np.ndarray, labels: list[str]) -> str:
        """Of ``labels``, the known speaker whose past audio sounds most like ``piece``."""
        pasts = [np.concatenate([s for s, lab in self._history if lab == label]) for label in labels]
        embeddings = embed_many([piece, *pasts])
        return labels[int(np.argmax(embeddings[1:] @ embeddings[0]))]

    def _new_label(self) -> str:
        if self._max_speakers is not None and self._count >= self._max_speakers:
            return self._history[-1][1]
        self._count += 1
        return f"SPEAKER_{self._count - 1:02d}"

    def _trim(self) -> None:
        total = sum(len(s) for s, _ in self._history) / SAMPLE_RATE
        while len(self._history) > 1 and total > self._context_s:
            total -= len(self._history[0][0]) / SAMPLE_RATE
            self._history.pop(0)


def _runs(labels: list[str], words: list[tuple[float, float]]) -> list[tuple[tuple[float, float], str]]:
    """Consecutive words of one label as ((start, end), label); a run ends halfway into the pause after it."""
    grouped = label_runs(labels, words)
    edges = [[run[0][0], run[-1][1]] for _, run in grouped]
    for before, after in itertools.pairwise(edges):
        before[1] = after[0] = (before[1] + after[0]) / 2
    return [((a, b), label) for (a, b), (label, _) in zip(edges, grouped, strict=True)]


def merge_short_runs(labels: list[str], words: list[tuple[float, float]]) -> list[str]:
    """Labels where every run shorter than ``MIN_RUN_SECONDS`` takes the label of the run before it
    (the one after it, for a first run): a word or two is too little audio to be sure of a change."""
    labels = list(labels)
    while True:
        runs = _runs(labels, words)
        short = [i for i, ((a, b), _) in enumerate(runs) if b - a < MIN_RUN_SECONDS]
        if len(runs) < 2 or not short:
            return labels
        i = min(short, key=lambda k: runs[k][0][1] - runs[k][0][0])
        into = runs[i - 1][1] if i else runs[1][1]
        a, b = runs[i][0]
        labels = [into if a <= w0 and w1 <= b + 1e-9 else lab for (w0, w1), lab in zip(words, labels, strict=True)]


def speaker_tracker_factory(context_s: float = 40.0) -> Callable[..., SpeakerTracker]:
    """A factory the streaming endpoint calls once per session.

    All sessions share one offline diarizer of their own, not the batch endpoint's: its lock is
    held for a whole diarization, and a long upload must not hold up every stream's final segments.
    (The model weights themselves are shared, read-only.)
    """
    diarizer = OfflineDiarizer()

    def make(max_speakers: int | None = None, **_: object) -> SpeakerTracker:
        return SpeakerTracker(diarizer, context_s=context_s, max_speakers=max_speakers)

    return make
