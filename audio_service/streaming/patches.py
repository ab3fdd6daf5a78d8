"""The patch messages that carry only what changed of the segment views (:class:`~.values.SegmentView`).

A client that merges segments by id (``state[seg["id"]] = seg``) holds the whole transcript.
"""

from __future__ import annotations

from typing import Any

from audio_service.streaming.values import SegmentView


def segment_json(seg: SegmentView, with_words: bool = True) -> dict[str, Any]:
    """The wire form of a segment; finality is on the segment and on each word."""
    out: dict[str, Any] = {
        "id": seg.id,
        "text": seg.text,
        "start": round(seg.start, 3),
        "end": round(seg.end, 3),
        "is_final": seg.is_final,
    }
    if with_words:
        out["words"] = [
            {
                "word": w.word,
                "start": round(w.start, 3),
                "end": round(w.end, 3),
                "probability": round(w.probability, 4),
                "is_final": w.is_final or seg.is_final,
                **({"speaker_id": seg.speaker_id} if seg.speaker_id is not None else {}),
            }
            for w in seg.words
        ]
    if seg.speaker_id is not None:
        out["speaker_id"] = seg.speaker_id
    if seg.language is not None:
        out["language"] = seg.language
    return out


def patch_message(segments: list[SegmentView], with_words: bool = True) -> dict[str, Any] | None:
    """``{"segments": [...]}`` with the given changed segments, or None when nothing changed."""
    if not segments:
        return None
    return {"segments": [segment_json(s, with_words) for s in sorted(segments, key=lambda s: s.id)]}
