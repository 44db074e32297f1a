"""Hold Python's cyclic garbage collector off while a batch turns into lists and back."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_paused = 0
_paused_lock = threading.Lock()


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the collector while the block makes many short-lived lists (thread-safe, nestable).

    A JSON batch is one list per row. In a process that holds TensorFlow (hundreds of thousands
    of objects) allocating them now and then sets off a full collection: a pause of a few hundred
    ms that has nothing to do with the request. The lists die when the block ends, freed by
    reference counting, so nothing piles up.
    """
    global _paused
    with _paused_lock:
        ours = _paused > 0 or gc.isenabled()  # else someone else turned it off: leave it be
        if ours:
            _paused += 1
            gc.disable()
    if not ours:
        yield
        return
    try:
        yield
    finally:
        with _paused_lock:
            _paused -= 1
            if _paused == 0:
                gc.enable()
