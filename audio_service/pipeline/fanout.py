"""Long files on several workers at once: a file's blocks transcribed in parallel and joined on its clock.

A :class:`BlockTranscriber` sends one :class:`BlockTask` (a block's samples, its speech spans and the
decoding options: picklable, float32 bytes) somewhere and returns the block's transcript on the block's
clock. Under Ray Serve (``ray_serve.py``) it is a call to the deployment's ``transcribe_block``; without
one, the batch service runs blocks in order in its own worker.

The blocks are pulled by lanes: the receiving process's own workers are one lane, and the transcriber
gives ``lanes`` more (one block in flight each: under Ray, one per other replica). A lane takes the next
block when it is done with one, so a faster or less loaded worker takes more blocks. Sending every block at
once instead would leave their spread to the router's snapshot of queue lengths, in which the receiver
looks busy (its own request is open there) and the others idle: they would all go to one other replica.
The language is detected once, on the first block, before the other blocks go out, so every block is
decoded in the same language, as in the sequential path. A lane whose worker goes away mid-block (a replica
that died) raises :class:`LaneLost`: its block goes back to the front of the queue for any lane, and the lane
tries again after a pause (the router then picks a live replica), at most ``LANE_LOSSES`` times before it
retires; the receiver's own lane never retires, so every block is done. Diarization is not done per block: the receiving
side diarizes the whole file once after the join, so speaker labels hold over the whole file.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from audio_service.pipeline.asr import AsrOptions
from audio_service.pipeline.blocks import Block
from audio_service.schema import Audio, SpeechSpan, Transcript


@dataclass(frozen=True)
class BlockTask:
    """One block's work, self-contained so another process can run it."""

    model: str  # a resolved model id
    samples: bytes  # the block's 16 kHz mono float32 samples, exactly as decoded (PCM16 changed some words)
    spans: tuple[SpeechSpan, ...]  # speech in the block, on the block's clock
    opts: AsrOptions
    aligner: str | None  # the resolved aligner, or None when no word timing is needed

    @classmethod
    def of(cls, block: Block, model: str, opts: AsrOptions, aligner: str | None) -> BlockTask:
        return cls(model, block.audio.samples.astype("<f4").tobytes(), block.spans, opts, aligner)

    def audio(self) -> Audio:
        return Audio(np.frombuffer(self.samples, "<f4").copy())  # writable, like decoded audio


@dataclass(frozen=True)
class BlockResult:
    transcript: Transcript  # on the block's clock
    worker: str  # who transcribed it (a replica name), reported in the response's provenance


class BlockTranscriber(Protocol):
    """Transcribes one block, wherever it runs (the deployment's replicas under Ray Serve)."""

    @property
    def lanes(self) -> int:
        """Blocks to keep in flight through it at once (0: the receiver does them all)."""

    async def __call__(self, task: BlockTask) -> BlockResult: ...


Lane = Callable[[BlockTask], Awaitable[BlockResult]]
LANE_LOSSES = 2  # lost blocks after which a lane retires (its blocks go to the others)
LANE_RETRY_S = 1.0  # pause before a lane that lost its worker sends again


class LaneLost(Exception):
    """The worker behind a lane went away before it answered (its process died): do the block elsewhere."""


async def transcribe_blocks(
    blocks: Sequence[Block], lanes: Sequence[Lane], model: str, opts: AsrOptions, aligner: str | None, detect: bool
) -> list[BlockResult]:
    """Every block through the ``lanes`` (each takes the next block when done), in the blocks' order;
    with ``detect`` the first lane does the first block alone and the others start in its language."""
    results: dict[int, BlockResult] = {}
    todo = deque(enumerate(blocks))
    if detect and todo:
        index, block = todo.popleft()
        results[index] = await lanes[0](BlockTask.of(block, model, opts, aligner))
        opts = replace(opts, file_language=results[index].transcript.language)

    async def lane(send: Lane, losses: int) -> None:
        while todo:
            index, block = todo.popleft()
            try:
                results[index] = await send(BlockTask.of(block, model, opts, aligner))
            except LaneLost:
                todo.appendleft((index, block))
                losses -= 1
                if losses < 0:
                    return
                await asyncio.sleep(LANE_RETRY_S)

    # lanes[0] is the receiver's own: it raises no LaneLost and only stops when no block is left. Another lane
    # may give a block back after that, hence the loop.
    while todo:
        await asyncio.gather(lane(lanes[0], 0), *(lane(send, LANE_LOSSES) for send in lanes[1:]))
    return [results[i] for i in range(len(blocks))]
