"""The worker's garbage-collector policy: survivors of a batch leave the collector's sight, and the
periodic full collection still frees a reference cycle that outlived its batch."""

from __future__ import annotations

import gc
import weakref

from streams.live.collector import YoungCollector


class _Node:
    pass


def _cycle() -> weakref.ref:
    node = _Node()
    node.me = node  # unreachable once this returns, but only the collector can free it
    return weakref.ref(node)


def test_survivors_leave_the_collectors_sight_until_the_full_collection():
    was_enabled = gc.isenabled()
    gc.disable()  # no automatic collection may free the cycle behind the test's back
    try:
        collector = YoungCollector(full_every_s=3600)
        cycle = _cycle()
        collector.after_batch()
        assert gc.get_freeze_count() > 0
        gc.collect()
        assert cycle() is not None, "a frozen object is not walked by an ordinary collection"

        collector.full_every_s = 0  # the full collection is due
        collector.after_batch()
        assert cycle() is None, "the full collection frees the cycle that outlived its batch"
        assert gc.get_freeze_count() > 0, "and what survives it is frozen again"
    finally:
        gc.unfreeze()
        if was_enabled:
            gc.enable()
