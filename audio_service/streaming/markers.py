"""A stream's checkpoints and trace probes: each answered, in order, once the audio before it is done."""

from __future__ import annotations

from collections import deque
from typing import Any

from audio_service.schema import SAMPLE_RATE
from audio_service.streaming.endpointing import Endpointer
from audio_service.streaming.protocol import checkpoint_message, trace_message
from audio_service.streaming.values import Checkpoint, Trace


class Markers:
    """Markers at absolute sample positions, oldest first."""

    def __init__(self) -> None:
        self._queue: deque[tuple[int, Checkpoint | Trace]] = deque()

    def add(self, pos: int, message: Checkpoint | Trace) -> None:
        self._queue.append((pos, message))

    @property
    def first_at(self) -> int | None:
        """Position of the oldest marker still waiting, if any."""
        return self._queue[0][0] if self._queue else None

    def answer(self, ep: Endpointer, received: int) -> list[dict[str, Any]]:
        """The messages of the markers that can be answered now: a trace once every audio before it is
        transcribed, a checkpoint once every segment before it is final."""
        out = []
        while self._queue:
            pos, marker = self._queue[0]
            if isinstance(marker, Trace):
                done = ep.decoded_upto(received)
                if done < pos:
                    break
                out.append(trace_message(marker, (received - done) / SAMPLE_RATE))
            else:
                if ep.before(pos):
                    break
                out.append(checkpoint_message(marker.checkpoint_id))
            self._queue.popleft()
        return out

    def clear(self) -> None:
        self._queue.clear()
