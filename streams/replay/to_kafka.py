"""Replaying recorded touchpoints into the input topic, for the live worker to apply.

Each record's event is produced keyed by its customer id, in the order the records come:
a keyed producer keeps the order of the sends within each partition, and every event of
a customer lands in that customer's partition, so each customer's events arrive in file
order. Nothing is reordered, not even when pacing.

Two speeds: as fast as the broker takes them (sends are never awaited one at a time:
acknowledgements are gathered a chunk at a time), or paced by the events' own timestamps,
`speedup` times faster than they happened (one clock from the start: a send waits only
while the replay is ahead of schedule, so slow moments are caught up, not accumulated).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from rich.progress import Progress

from streams.imports.records import SourceRecord
from streams.kafka import clients
from streams.kafka.topics import ensure_topics
from streams.settings import Settings

#: Acknowledgements are awaited once this many sends are in flight (and at the end).
CHUNK = 4000
#: When pacing and at least this far ahead of schedule, the sends in flight are awaited during the wait.
SETTLE_WHEN_AHEAD_S = 0.1


@dataclass
class ToKafkaResult:
    """What a replay into Kafka did."""

    produced: int = 0
    rejected: int = 0  # records without an event (they failed to parse): not produced
    end_offsets: dict[int, int] = field(default_factory=dict)  # partition -> last acknowledged offset + 1
    elapsed_s: float = 0.0


async def replay_to_kafka(
    records: Iterable[SourceRecord],
    settings: Settings,
    speedup: float | None = None,
    progress: Progress | None = None,
) -> ToKafkaResult:
    """Produce every record's event into `settings.topic_touchpoints` (creating the topics first).

    `speedup=None`: as fast as possible. `speedup=S`: the event-time gap between two events,
    divided by S, passes before the later one is sent. Returns the counts and, per partition,
    where the input now ends (from the produce acknowledgements, not from the broker's end
    offsets, which Tansu reports short).
    """
    if speedup is not None and not speedup > 0:
        raise ValueError(f"speedup must be positive, not {speedup!r}")
    await ensure_topics(settings)
    result = ToKafkaResult()
    total = len(records) if hasattr(records, "__len__") else None  # type: ignore[arg-type]
    task = (
        progress.add_task(f"producing to {settings.topic_touchpoints}", total=total) if progress is not None else None
    )
    producer = clients.producer(settings, acks="all", linger_ms=10, max_batch_size=256 * 1024)
    await producer.start()
    pending: list[asyncio.Future] = []
    skipped = 0  # rejected records not yet shown on the progress bar

    async def settle() -> None:
        """Wait for every send in flight; record where each partition ends; move the bar."""
        nonlocal pending, skipped
        acks = await asyncio.gather(*pending)
        for ack in acks:
            if ack.offset + 1 > result.end_offsets.get(ack.partition, 0):
                result.end_offsets[ack.partition] = ack.offset + 1
        result.produced += len(acks)
        if progress is not None and task is not None:
            progress.advance(task, len(acks) + skipped)
        pending, skipped = [], 0

    started = time.monotonic()
    first_ts: float | None = None
    latest_ts: float | None = None
    try:
        for record in records:
            event = record.event
            if event is None:
                result.rejected += 1
                skipped += 1
                continue
            if speedup is not None:
                ts = event.occurred_ts
                if first_ts is None:
                    first_ts = ts
                # An event older than one already sent is sent at once.
                latest_ts = ts if latest_ts is None else max(latest_ts, ts)
                due = started + (latest_ts - first_ts) / speedup
                if due > time.monotonic():
                    if (pending or skipped) and due - time.monotonic() > SETTLE_WHEN_AHEAD_S:
                        await settle()  # well ahead of schedule: show what has landed meanwhile
                    wait = due - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
            value = event.model_dump_json(by_alias=True, exclude_none=True).encode()
            pending.append(await producer.send(settings.topic_touchpoints, value=value, key=event.customer_id.encode()))
            if len(pending) >= CHUNK:
                await settle()
        await settle()
    finally:
        await producer.stop()
    result.elapsed_s = time.monotonic() - started
    return result
