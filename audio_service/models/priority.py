"""CPU priority for inference threads, and no CPU spent waiting in numpy's BLAS threads.

On a machine with few cores, model threads would otherwise compete as equals with the event
loop, and ``/health`` or a WebSocket frame could wait behind a long decode. Inference threads
(and the CTranslate2 / OpenMP threads they create, which inherit the setting) run at a lower priority,
in two tiers: live streams (a person is waiting for the words) above batch work (a request that is
measured in throughput). Linux's scheduler shares a busy core by weight: nice 0 : 5 : 10 is about
9 : 3 : 1, so a long upload takes the cores that streams leave idle instead of delaying their finals.

numpy's OpenBLAS keeps a thread per core that busy-waits after every call: the small matrix products
of a model call (mel filters, alignment) left the other core spinning for the whole call. Measured
on a 2-core CPU (tiny.en, a 2 s window): 58 ms wall for 116 ms of CPU, and 73 ms for 73 ms with one
BLAS thread. So numpy's BLAS runs on the calling thread (``models.blas_threads``); CTranslate2 and torch
have their own pools.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

log = logging.getLogger(__name__)

STREAM_NICENESS = 5  # streaming decode and speaker tracking
BATCH_NICENESS = 10  # batch transcription, alignment and diarization workers


def limit_numpy_blas(threads: int = 1) -> None:
    """Limit the OpenBLAS libraries loaded by numpy/scipy (not torch's or CTranslate2's pools); 0 = leave them."""
    if threads <= 0:
        return
    try:
        from threadpoolctl import ThreadpoolController

        ThreadpoolController().select(internal_api="openblas").limit(limits=threads)
    except Exception as exc:  # threadpoolctl missing or a BLAS it cannot drive: only CPU is lost
        log.debug("could not limit numpy's BLAS threads: %s", exc)


def limit_torch_threads(threads: int) -> None:
    """torch's intra-op threads (diarization, pyannote VAD, speaker embeddings, MMS alignment) follow
    ``models.cpu_threads`` when it is set, as CTranslate2's do; 0 = leave torch's default (every core).

    Why it matters: model threads run at a lower priority (above), so on a shared core one of torch's
    threads gets a small share of it, and every parallel op waits for that thread. Beside one busy
    process, a 10-minute diarization with 2 torch threads at nice 10 took over 15 minutes instead of
    about 15 s. torch reads ``OMP_NUM_THREADS`` when it is first imported (lazily, on the first request
    that needs it); an operator's own value wins."""
    if threads > 0:
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        torch = sys.modules.get("torch")
        if torch is not None:  # already imported (a test process, a preload): set it directly
            torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def lower_thread_priority(increment: int = STREAM_NICENESS) -> None:
    """Raise the calling thread's nice value (Linux: per-thread); a no-op where unsupported."""
    try:
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + increment))
    except (AttributeError, OSError, PermissionError) as exc:  # not Linux, or not permitted
        log.debug("could not lower inference thread priority: %s", exc)
