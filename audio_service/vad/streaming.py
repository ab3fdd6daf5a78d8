"""Silero VAD run incrementally: one stream's audio in, one speech probability per 32 ms window out.

faster-whisper's :class:`SileroVADModel` scores a whole file at once: every 512-sample window is
fed with the 64 samples before it as context, and the LSTM state ``h``/``c`` is carried from one
batch of windows to the next. We do exactly the same, but keep the context, the state and the
not-yet-complete window per stream, so a stream can be scored frame by frame. The ONNX session
itself is the shared, stateless one (:func:`~audio_service.whisper.silero.silero_session`);
``InferenceSession.run`` is thread-safe.
"""

from __future__ import annotations

import numpy as np

from audio_service.whisper.silero import silero_session

WINDOW = 512  # samples per Silero window at 16 kHz (32 ms)
CONTEXT = 64


class StreamingVad:
    """Per-stream Silero state; :meth:`push` returns the probabilities of the windows it completed."""

    def __init__(self) -> None:
        self._session = silero_session()
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self.position = 0  # samples scored so far (start of the next window)

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Score every window completed by ``samples``; window ``i`` starts at ``position_before + i*512``."""
        audio = np.concatenate([self._pending, samples]) if self._pending.size else samples
        n = (len(audio) // WINDOW) * WINDOW
        self._pending = audio[n:].astype(np.float32, copy=True)
        if n == 0:
            return np.zeros(0, dtype=np.float32)
        windows = audio[:n].astype(np.float32, copy=False).reshape(-1, WINDOW)
        contexts = np.concatenate([self._context[None, :], windows[:-1, -CONTEXT:]], axis=0)
        batch = np.ascontiguousarray(np.concatenate([contexts, windows], axis=1))
        out, self._h, self._c = self._session.run(None, {"input": batch, "h": self._h, "c": self._c})
        self._context = windows[-1, -CONTEXT:].copy()
        self.position += n
        return np.asarray(out, dtype=np.float32).reshape(-1)
