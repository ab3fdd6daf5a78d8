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
BLAS thread. So numpy's BLAS runs on the calling thread (``blas_threads``); CTranslate2 and torch
have their own pools.
"""

from __future__ import annotations

import logging
import os
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


def lower_thread_priority(increment: int = STREAM_NICENESS) -> None:
    """Raise the calling thread's nice value (Linux: per-thread); a no-op where unsupported."""
    try:
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + increment))
    except (AttributeError, OSError, PermissionError) as exc:  # not Linux, or not permitted
        log.debug("could not lower inference thread priority: %s", exc)
