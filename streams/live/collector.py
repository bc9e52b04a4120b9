"""How the worker keeps Python's garbage collector off its long-lived objects.

What outlives a batch is mostly the states the worker remembers (`streams/live/warm_states.py`). Left in
the collector's generations, they were walked again and again, which cost about as much as
reading them back from Redis. After each batch they are moved out of its sight (`gc.freeze`, which
costs nothing however much there is); reference counting still frees them when they go. A full
collection over everything runs now and then, so a reference cycle that outlived its batch is
freed all the same.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)

#: How often the collector walks every object (a full walk's cost with many remembered states: the README).
FULL_COLLECTION_EVERY_S = 600.0


class YoungCollector:
    """Call `after_batch` once a batch is done; the collector then walks only what later batches make."""

    def __init__(self, full_every_s: float = FULL_COLLECTION_EVERY_S) -> None:
        self.full_every_s = full_every_s
        self._last_full = time.monotonic()

    def after_batch(self) -> None:
        now = time.monotonic()
        if now - self._last_full >= self.full_every_s:
            gc.unfreeze()
            gc.collect()
            log.debug("full garbage collection took %.0f ms", (time.monotonic() - now) * 1000)
            self._last_full = time.monotonic()
        gc.freeze()
