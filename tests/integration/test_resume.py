"""Redis is the truth for where a partition got to, on a real Tansu broker and a real redis-server.

A Redis that lost its last writes (restored from a snapshot, failed over to a lagging replica) is
simulated exactly: every key of the deployment is dumped (`DUMP`) at one moment and put back
(`RESTORE`, in one transaction) later, so Redis is behind both what was applied and what Kafka
has as the group's committed offsets.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict

import pytest
import redis.asyncio as aioredis
from aiokafka import TopicPartition
from aiokafka.partitioner import murmur2

from streams.core.intake import RawMessage
from streams.kafka.resume import LOST_OFFSETS
from streams.live.processor import Processor
from streams.live.worker import Worker
from streams.local import sample
from streams.store import JourneyStore, Keys

pytestmark = pytest.mark.integration


def dump_keys(d) -> dict[bytes, bytes]:
    """Every key of the deployment but the worker stats, serialised by Redis itself."""
    keys = [k for k in d.redis.scan_iter(match=f"{d.settings.key_prefix}:*", count=1000) if b":stats:" not in k]
    return {k: d.redis.dump(k) for k in keys}


def restore_keys(d, snapshot: dict[bytes, bytes]) -> None:
    """Put the deployment's keys back as they were in `snapshot`, atomically (a MULTI/EXEC block)."""
    current = [k for k in d.redis.scan_iter(match=f"{d.settings.key_prefix}:*", count=1000) if b":stats:" not in k]
    pipe = d.redis.pipeline(transaction=True)
    if current:
        pipe.delete(*current)
    for key, value in snapshot.items():
        pipe.restore(key, 0, value, replace=True)
    pipe.execute()


def marks(d) -> dict[int, int | None]:
    prefix, topic = d.settings.key_prefix, d.settings.topic_touchpoints
    found = {}
    for p in range(d.settings.partitions):
        raw = d.redis.hget(Keys(prefix, topic).mark(p), "offset")
        found[p] = None if raw is None else int(raw)
    return found


def by_id(messages: list[dict], id_field: str) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = defaultdict(list)
    for m in messages:
        found[m[id_field]].append(m)
    return found


def assert_same_outputs_with_repeats(d, reference) -> tuple[int, int]:
    """The same change and action ids as the reference, each id always the same message; returns how
    many messages of each were published more than once (a repeat is allowed, a different id is not)."""
    repeats = []
    for read, id_field in (("changes", "change_id"), ("actions", "action_id")):
        got, want = by_id(getattr(d, read)(), id_field), by_id(getattr(reference, read)(), id_field)
        assert set(got) == set(want), f"{read}: missing {set(want) - set(got)}, extra {set(got) - set(want)}"
        for message_id, copies in got.items():
            assert all(c == want[message_id][0] for c in copies), f"{id_field} {message_id} differs"
        repeats.append(sum(len(c) - 1 for c in got.values()))
    return repeats[0], repeats[1]


def test_a_worker_started_over_a_redis_that_lost_writes_applies_them_again_with_the_same_ids(deploy, engine):
    """Kafka's committed offsets are at the end of the input, Redis is back at the middle: the restarted
    worker resumes where Redis says, and the second half is applied again with the same ids."""
    events = list(sample.generate(80, seed=21))
    half = len(events) // 2
    d = deploy(JOURNEY_CLOCK="event")
    d.produce(events[:half])
    first = d.start_worker()
    d.wait_caught_up()
    snapshot, marks_then = dump_keys(d), marks(d)
    d.produce(events[half:])
    d.wait_caught_up()
    d.stop_worker(first)  # a graceful stop commits the offsets to Kafka: they point at the end of the input
    states = d.states()
    changes_before = {c["change_id"] for c in d.changes()}

    restore_keys(d, snapshot)
    assert marks(d) == marks_then and d.states() != states
    second = d.start_worker()
    d.wait_caught_up(timeout=60)
    log = d.worker_log(second)
    for p, mark in marks_then.items():
        assert f"partition {p}: offset {mark} applied: reading from offset {mark + 1}" in log
    assert d.states() == states
    assert {c["change_id"] for c in d.changes()} == changes_before
    assert d.wait_stat(second, "events", len(events) - half) == len(events) - half

    reference = deploy(input_of=d, engine="aiokafka", JOURNEY_CLOCK="event")
    reference.start_worker()
    reference.wait_caught_up()
    repeated_changes, _ = assert_same_outputs_with_repeats(d, reference)
    assert repeated_changes > 0, "nothing was published twice: the second half was not applied again"
    assert d.states() == reference.states()


def test_a_redis_restored_under_a_running_worker_is_read_again_from_its_marks(deploy, engine):
    """Redis goes back while the worker holds its partitions and no new input comes: the worker notices
    (the sweep reads the marks), reads each partition again from its mark, and ends where a worker that
    saw no restore ends; input after that is applied on top."""
    events = list(sample.generate(90, seed=23))
    a, b = len(events) // 3, 2 * len(events) // 3
    d = deploy(JOURNEY_CLOCK="event")
    d.produce(events[:a])
    worker = d.start_worker()
    d.wait_caught_up()
    snapshot = dump_keys(d)
    d.produce(events[a:b])
    d.wait_caught_up()
    states = d.states()

    restore_keys(d, snapshot)
    assert d.states() != states
    d.wait_caught_up(timeout=30)
    assert d.states() == states
    assert d.wait_stat(worker, "rewinds", d.settings.partitions) == d.settings.partitions
    assert "Redis lost writes" in d.worker_log(worker)
    assert worker.poll() is None

    d.produce(events[b:])
    d.wait_caught_up()
    reference = deploy(input_of=d, engine="aiokafka", JOURNEY_CLOCK="event")
    reference.start_worker()
    reference.wait_caught_up()
    assert_same_outputs_with_repeats(d, reference)
    assert d.states() == reference.states()


def test_a_redis_restored_under_a_worker_mid_stream_is_read_again_without_a_gap(deploy, engine):
    """Redis goes back while the worker is in the middle of a stream, with records fetched past the
    restored marks waiting in its buffers: it reads each partition again from its mark, applies none of
    the buffered records over the gap, does not stall, and ends where a worker that saw no restore ends."""
    events = list(sample.generate(300, seed=29))
    a = len(events) // 4
    d = deploy(JOURNEY_CLOCK="event", JOURNEY_PARTITIONS="4", JOURNEY_BATCH_SIZE="250")
    d.produce(events[:a])
    worker = d.start_worker()
    d.wait_caught_up()
    snapshot, then = dump_keys(d), sum(m for m in marks(d).values() if m is not None)
    d.produce(events[a:])
    deadline = time.monotonic() + 60
    while sum(m for m in marks(d).values() if m is not None) < then + 200:  # it applies past the snapshot
        assert time.monotonic() < deadline, d.worker_log()
        time.sleep(0.02)
    restore_keys(d, snapshot)
    d.wait_caught_up(timeout=90)
    assert worker.poll() is None
    assert "Redis lost writes" in d.worker_log(worker)

    reference = deploy(input_of=d, engine="aiokafka", JOURNEY_CLOCK="event", JOURNEY_PARTITIONS="4")
    reference.start_worker()
    reference.wait_caught_up(timeout=90)
    assert_same_outputs_with_repeats(d, reference)
    assert d.states() == reference.states()


class caplog_at_error:
    """The processor's log lines of level ERROR and above, collected while in the block."""

    def __enter__(self) -> list[str]:
        self.lines: list[str] = []
        self.handler = logging.Handler(logging.ERROR)
        self.handler.emit = lambda record: self.lines.append(record.getMessage())  # type: ignore[method-assign]
        logging.getLogger("streams.live.processor").addHandler(self.handler)
        return self.lines

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("streams.live.processor").removeHandler(self.handler)


def _message(partition: int, offset: int, event: dict) -> RawMessage:
    return RawMessage("touchpoints", partition, offset, event["customer_id"].encode(), json.dumps(event).encode())


def test_the_processor_applies_nothing_past_a_mark_that_went_back_and_asks_for_a_seek(stack):
    """A batch whose partition mark is behind what this processor applied there is not applied: the
    partition is handed back for a seek. After the seek (the mark is what this worker holds again), the
    offsets up to the mark are skipped as redelivered and the rest applied. A commit fenced by another
    writer also asks for a seek."""
    events = [e for e in sample.generate(12, seed=4) if e["customer_id"] == "cust-000003"][:8]
    assert len(events) == 8
    prefix = f"proc-{time.monotonic_ns()}"

    async def scenario() -> None:
        client = aioredis.Redis.from_url(stack.redis_url)
        published: list = []

        async def publish(messages) -> None:
            published.extend(messages)

        from streams.settings import Settings

        settings = Settings(redis_url=stack.redis_url, key_prefix=prefix, topic_touchpoints="touchpoints")
        store = JourneyStore.for_settings(client, settings)
        processor = Processor(settings, store, publish)
        mark_key = store.mark_key(0)
        try:
            await processor.process_batch([_message(0, i, e) for i, e in enumerate(events[:5])])
            assert processor.applied == {0: 4} and not processor.rewound
            state_then = await client.get(store.state_key(0, "cust-000003"))

            await client.hset(mark_key, "offset", 2)  # Redis lost offsets 3 and 4
            out_before = len(published)
            await processor.process_batch([_message(0, i, events[i]) for i in (5, 6)])
            assert processor.rewound == {0} and processor.stats.rewinds == 1
            assert int(await client.hget(mark_key, "offset")) == 2
            assert await client.get(store.state_key(0, "cust-000003")) == state_then
            assert len(published) == out_before

            # Until the worker has sought the partition, none of its input is applied, whoever noticed
            # the mark going back: here the sweep (which reads every mark) notices it once more.
            processor.rewound.clear()
            processor.applied[0] = 4
            await processor.sweep([0])
            assert processor.rewound == {0} and processor.stats.rewinds == 2 and 0 not in processor.applied
            await processor.process_batch([_message(0, i, events[i]) for i in (5, 6)])
            assert int(await client.hget(mark_key, "offset")) == 2 and len(published) == out_before

            processor.rewound.clear()
            processor.applied[0] = 2  # what the worker's seek to mark + 1 sets
            await processor.process_batch([_message(0, i, events[i]) for i in range(1, 8)])
            assert processor.stats.redelivered == 2  # offsets 1 and 2
            assert int(await client.hget(mark_key, "offset")) == 7 and processor.applied == {0: 7}
            assert not processor.rewound

            # Another writer moves the mark between this batch's read and its commit: fenced, and a seek asked.
            real_load = store.load

            async def load_then_another_writer(partitions, customer_ids, *args, **kwargs):
                found = await real_load(partitions, customer_ids, *args, **kwargs)
                await client.hset(mark_key, mapping={"offset": 9, "writer": "someone-else"})
                return found

            store.load = load_then_another_writer  # type: ignore[method-assign]
            await processor.process_batch([_message(0, 8, events[0] | {"event_id": "late-1"})])
            assert processor.stats.fenced_batches == 1 and processor.rewound == {0}
            assert 0 not in processor.applied
            assert int(await client.hget(mark_key, "offset")) == 9

            # Redis goes back between this batch's read and its commit: not another owner (none moves a
            # mark back) but lost writes, counted and said as such.
            processor.rewound.clear()
            processor.applied[0] = 9

            async def load_then_restored(partitions, customer_ids, *args, **kwargs):
                found = await real_load(partitions, customer_ids, *args, **kwargs)
                await client.hset(mark_key, "offset", 5)
                return found

            store.load = load_then_restored  # type: ignore[method-assign]
            with caplog_at_error() as seen:
                await processor.process_batch([_message(0, 10, events[1] | {"event_id": "late-2"})])
            assert processor.stats.rewinds == 3 and processor.stats.fenced_batches == 1
            assert processor.rewound == {0} and 0 not in processor.applied
            assert int(await client.hget(mark_key, "offset")) == 5
            assert any("Redis lost writes" in line and "offset 6" in line for line in seen)
        finally:
            keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()

    asyncio.run(scenario())


class _RetentionFloor(Worker):
    """A worker whose broker no longer holds the offsets of partition 0 below `floor`, as if retention
    had deleted them. Tansu keeps every record and has no DeleteRecords, so this one answer (the
    earliest offset) is raised to the floor; the seek, the fetches from the floor on, the dead letter
    and Redis are all real."""

    floor = 0

    async def earliest_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        real = await super().earliest_offsets(partitions)
        return {tp: max(offset, self.floor) if tp.partition == 0 else offset for tp, offset in real.items()}


def test_offsets_deleted_before_they_were_applied_are_reported_once_and_the_rest_applied(deploy, caplog):
    """The mark of partition 0 is behind the earliest offset Kafka holds: an error log, the counter, a dead
    letter naming the partition and the missing range, and the partition goes on from the earliest
    offset; the mark is moved past the range, so the next assignment reports nothing again."""
    events = list(sample.generate(40, seed=8))
    half = len(events) // 2
    d = deploy(JOURNEY_CLOCK="event")
    d.produce(events[:half])
    first = d.start_worker()
    d.wait_caught_up()
    d.stop_worker(first)
    applied = marks(d)[0]
    offsets = d.produce(events[half:])
    on_zero = [(o, e) for o, e in zip(offsets, events[half:], strict=True) if o > applied and _partition_of(d, e) == 0]
    assert len(on_zero) >= 4
    lost = on_zero[:3]
    floor = lost[-1][0] + 1

    async def run_worker_once() -> dict[str, int]:
        worker = _RetentionFloor(d.settings)
        worker.floor = floor
        job = asyncio.create_task(worker.run())
        deadline = time.monotonic() + 60
        try:
            while not d.caught_up():
                assert time.monotonic() < deadline, "the worker did not catch up"
                assert not job.done(), job
                await asyncio.sleep(0.1)
            return worker.processor.stats.counters()
        finally:
            worker.stopping.set()
            await asyncio.wait_for(job, 30)

    caplog.set_level(logging.INFO, logger="streams.live.worker")
    counters = asyncio.run(run_worker_once())
    assert counters["offsets_lost"] == len(lost)
    first_lost, last_lost = lost[0][0], lost[-1][0]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(f"offsets {first_lost}-{last_lost} (3 offsets)" in e and "partition 0" in e for e in errors), errors
    letters = [dl for dl in d.dead_letters() if dl["error"].startswith(LOST_OFFSETS)]
    assert len(letters) == 1
    letter = letters[0]
    assert (letter["source_partition"], letter["source_offset"]) == (0, first_lost)
    assert letter["raw_key_b64"] is None and letter["raw_value_b64"] is None
    assert f"offsets {first_lost}-{last_lost} of partition 0" in letter["error"]
    assert f"went on from offset {floor}" in letter["error"]

    # Every other event was applied, as by a worker that never saw the lost ones.
    never_applied = {e["event_id"] for _, e in lost}
    assert not never_applied & {c["caused_by"] for c in d.changes()}
    reference = deploy(JOURNEY_CLOCK="event")
    reference.produce([e for e in events if e["event_id"] not in never_applied])
    reference.start_worker()
    reference.wait_caught_up()
    assert d.states() == reference.states()
    assert {c["change_id"] for c in d.changes()} == {c["change_id"] for c in reference.changes()}

    # The mark was moved past the range: a second run reports nothing again.
    caplog.clear()
    counters = asyncio.run(run_worker_once())
    assert counters["offsets_lost"] == 0
    assert len([dl for dl in d.dead_letters() if dl["error"].startswith(LOST_OFFSETS)]) == 1
    assert f"partition 0: offset {d.partition_ends()[0] - 1} applied" in caplog.text


def _partition_of(d, event: dict) -> int:
    """The partition a keyed event lands on (murmur2, as every Kafka client's default partitioner)."""
    return (murmur2(event["customer_id"].encode()) & 0x7FFFFFFF) % d.settings.partitions
