"""torchaudio's MMS forced aligner (wav2vec2 CTC + ``forced_align``), where its weights are installed.

Loaded only when the deployment puts ``model.pt`` in ``Settings.alignment.mms_fa_dir`` (see
:class:`audio_service.pipeline.align.AlignerRegistry`); nothing is ever downloaded.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import replace
from pathlib import Path

import numpy as np

from audio_service.schema import Audio, Transcript, Word


class MmsAligner:
    """torchaudio's ``MMS_FA`` bundle loaded from a local ``model.pt`` (never downloaded)."""

    def __init__(self, weights_dir: Path) -> None:
        import torch
        import torchaudio

        bundle = torchaudio.pipelines.MMS_FA
        # load_state_dict_from_url finds model.pt in model_dir and downloads nothing.
        self._model = bundle.get_model(dl_kwargs={"model_dir": str(weights_dir), "progress": False}).eval()
        self._dictionary = bundle.get_dict()
        self._torch = torch
        self._functional = torchaudio.functional

    def realign(self, audio: Audio, transcript: Transcript) -> Transcript:
        """New word timings for each segment's words, aligned within the segment's audio."""
        segments = []
        for s in transcript.segments:
            if not s.words:
                segments.append(s)
                continue
            start, end = s.start, max(s.end, s.words[-1].end)
            timed = self.align_words(audio.slice(start, end), [w.word for w in s.words], start)
            words = tuple(replace(w, start=t.start, end=t.end) for w, t in zip(s.words, timed, strict=True))
            segments.append(replace(s, words=words))
        return transcript.with_segments(tuple(segments))

    def align_words(self, audio: Audio, words: list[str], offset: float) -> list[Word]:
        """Forced-align ``words`` to ``audio``; times are offset by ``offset`` seconds."""
        torch, F = self._torch, self._functional
        romanized = [_romanize(w) or "*" for w in words]
        tokens = [self._dictionary[c] for w in romanized for c in w]
        with torch.inference_mode():
            emission, _ = self._model(torch.from_numpy(audio.samples)[None])
        labels, scores = F.forced_align(emission, torch.tensor([tokens], dtype=torch.int32), blank=0)
        spans = F.merge_tokens(labels[0], scores[0].exp())
        ratio = audio.duration / emission.shape[1]
        out, k = [], 0
        for w, r in zip(words, romanized, strict=True):
            piece = spans[k : k + len(r)]
            k += len(r)
            out.append(
                Word(offset + piece[0].start * ratio, offset + piece[-1].end * ratio, w, float(np.mean([p.score for p in piece])))
            )
        return out


def _romanize(word: str) -> str:
    """Lower-case ASCII letters and apostrophes: the MMS_FA dictionary (no uroman here)."""
    text = unicodedata.normalize("NFKD", word.lower())
    return re.sub(r"[^a-z']", "", text)
