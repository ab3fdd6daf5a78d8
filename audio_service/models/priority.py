"""CPU priority for inference threads.

On a machine with few cores, model threads would otherwise compete as equals with the event
loop, and ``/health`` or a WebSocket frame could wait behind a long decode. Inference threads
(and the CTranslate2 threads they create, which inherit the setting) run at a lower priority.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)

INFERENCE_NICENESS = 5


def lower_thread_priority(increment: int = INFERENCE_NICENESS) -> None:
    """Raise the calling thread's nice value (Linux: per-thread); a no-op where unsupported."""
    try:
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + increment))
    except (AttributeError, OSError, PermissionError) as exc:  # not Linux, or not permitted
        log.debug("could not lower inference thread priority: %s", exc)
