"""The Faust app: one agent that takes the input topic in batches, and a timer that sweeps due times.

Run it with `journey worker` (or `faust -A streams.app worker -l info`). Every setting
comes from `JOURNEY_*` environment variables (see `streams/settings.py` and the README).
State lives in Redis, awaited from the agent; no Faust tables are used.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import tempfile
import time
from pathlib import Path

import faust
import redis.asyncio as aioredis

from streams import outbox
from streams.intake import RawMessage
from streams.processor import Processor
from streams.settings import Settings
from streams.store import JourneyStore

log = logging.getLogger("streams.worker")
settings = Settings()


def broker_url(bootstrap: str) -> str:
    return ";".join(f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip())


app = faust.App(
    settings.consumer_group,
    broker=broker_url(settings.kafka_bootstrap),
    key_serializer="raw",
    value_serializer="raw",
    web_enabled=False,
    datadir=str(Path(tempfile.gettempdir()) / f"faust-{settings.consumer_group}"),
    topic_partitions=settings.partitions,
    topic_replication_factor=settings.replication_factor,
    consumer_auto_offset_reset="earliest",
    broker_session_timeout=settings.session_timeout_s,
    broker_heartbeat_interval=settings.heartbeat_interval_s,
    broker_rebalance_timeout=max(settings.session_timeout_s, 10.0),
    producer_acks=-1,
    producer_linger=0.005,
    stream_buffer_maxsize=max(4096, settings.batch_size * 4),
)

touchpoints = app.topic(
    settings.topic_touchpoints, key_type=bytes, value_type=bytes, partitions=settings.partitions
)
output_topics = [app.topic(name, partitions=settings.partitions) for name in settings.output_topics]


async def publish(messages: list[outbox.OutboundMessage]) -> None:
    """Send every message, then wait until the broker has acknowledged all of them."""
    producer = app.producer
    pending = [
        await producer.send(m.topic, None if m.key is None else m.key.encode(), m.value.encode(), None, None, None)
        for m in messages
    ]
    await asyncio.gather(*pending)


_processor: Processor | None = None


def processor() -> Processor:
    """The worker's processor, made on first use (the Redis client must bind to the running loop)."""
    global _processor
    if _processor is None:
        client = aioredis.Redis.from_url(settings.redis_url, socket_timeout=30, health_check_interval=10)
        store = JourneyStore(client, settings.key_prefix, settings.topic_touchpoints)
        _processor = Processor(settings, store, publish)
    return _processor


@app.task
async def declare_output_topics() -> None:
    """Create the output topics if they do not exist yet (the input topic is declared by the agent)."""
    for topic in output_topics:
        await topic.maybe_declare()


async def process_until_done(batch: list[RawMessage]) -> None:
    """Outages are retried inside; anything else is logged and the same batch retried, never skipped."""
    while True:
        try:
            return await processor().process_batch(batch)
        except Exception:
            log.exception("processing a batch of %d messages failed; retrying it in 1s", len(batch))
            await asyncio.sleep(1.0)


@app.agent(touchpoints)
async def process_touchpoints(stream):
    """Apply the input in batches; acknowledge each batch only once Redis and Kafka hold its effects."""
    async for events in stream.noack_take(settings.batch_size, within=settings.batch_within_s):
        batch = [
            RawMessage(e.message.topic, e.message.partition, e.message.offset, e.message.key, e.message.value)
            for e in events
        ]
        await process_until_done(batch)
        for event in events:
            await stream.ack(event)


def owned_partitions() -> list[int]:
    return [tp.partition for tp in app.consumer.assignment() if tp.topic == settings.topic_touchpoints]


@app.timer(interval=settings.sweep_interval_s)
async def sweep_due_times() -> None:
    """Flag customers who went quiet (no event of theirs will do it) and flush any left-over outbox."""
    await processor().sweep(owned_partitions())


_last_report = [time.monotonic(), 0]
STATS_KEY = f"{settings.key_prefix}:stats:{socket.gethostname()}:{os.getpid()}"


@app.timer(interval=1.0)
async def publish_stats() -> None:
    """Expose the worker's counters in Redis (one hash per worker process) for dashboards and the benchmark."""
    proc = processor()
    fields = {k: v for k, v in vars(proc.stats).items() if isinstance(v, int)}
    try:
        await proc.store.client.hset(STATS_KEY, mapping=fields)
        await proc.store.client.expire(STATS_KEY, 3600)
    except Exception as exc:  # stats are best effort; the processing path retries on its own
        log.warning("could not publish stats: %s", exc)


@app.timer(interval=10.0)
async def report_progress() -> None:
    stats = processor().stats
    now = time.monotonic()
    rate = (stats.events - _last_report[1]) / (now - _last_report[0])
    _last_report[:] = [now, stats.events]
    log.info(
        "events=%d (%.0f/s) changes=%d actions=%d suppressed=%d dead-lettered=%d redelivered=%d duplicates=%d",
        stats.events, rate, stats.changes, stats.actions, stats.suppressed,
        stats.dead_lettered, stats.redelivered, stats.duplicates,
    )
