"""The demo's watcher reads every output topic, where an erasure puts tombstones (null values)."""

from __future__ import annotations

import io

from rich.console import Console

from streams.local.demo import Watcher
from streams.settings import Settings


def test_tombstone_is_skipped_and_the_next_message_still_counted() -> None:
    s = Settings()
    watcher = Watcher(Console(file=io.StringIO()), s, quiet=True)
    for topic in (s.topic_type_changes, s.topic_nurture_actions, s.topic_holdouts):
        watcher.show(topic, None)
    assert watcher.lifecycle == {} and not watcher.actions
    watcher.show(s.topic_dead_letter, b'{"error": "not JSON", "source_partition": 0, "source_offset": 7}')
    assert sum(watcher.dead.values()) == 1
