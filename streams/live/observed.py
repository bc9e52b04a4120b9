"""The worker as the HTTP routes see it: its progress bookkeeping (`Pulse`) and the `Engine` it offers.

The worker marks a few moments on its `Pulse` — a poll of Kafka, a batch taken, a batch applied,
the group joined — and the routes judge from them: /healthz fails when a batch has been in
flight, or Kafka not polled, for longer than `JOURNEY_HEALTH_STALL_S`; /readyz passes once the
clients are connected, the worker is a member of its group, and Redis answers a ping.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from aiokafka import TopicPartition
from pydantic import ValidationError
from redis.exceptions import RedisError

from streams.http.engine import Unavailable
from streams.http.metrics import Telemetry
from streams.kafka.publish import partition_for
from streams.profile import build_profile
from streams.store.history import read as read_history
from streams.store.lookup import find_async
from streams.text import printable, redact

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer
    from redis.asyncio import Redis, RedisCluster

    from streams.live.processor import Processor
    from streams.settings import Settings

log = logging.getLogger(__name__)
#: Longest wait for one partition's fetch position while refreshing the lag gauge.
POSITION_WAIT_S = 0.5


class Pulse:
    """When the worker last made progress, and the per-batch metrics (observed once per batch)."""

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry
        self.polled_at = time.monotonic()  # from the start: a worker that never reaches Kafka stalls too
        self.batch_since: float | None = None
        self.connected = False  # the producer and the consumer have started
        self.joined = False  # a member of the consumer group with its (possibly empty) assignment
        self._published = 0

    def polled(self) -> None:
        self.polled_at = time.monotonic()

    def batch_started(self, published: int) -> None:
        """A batch is in hand (`published`: the processor's count of published outputs so far)."""
        self.batch_since = time.monotonic()
        self._published = published

    def batch_applied(self, batch: Mapping[Any, Sequence[Any]], published: int) -> None:
        """The batch's effects are in Redis and its outputs acknowledged by Kafka."""
        if self.batch_since is not None:
            self.telemetry.batch_seconds.observe(time.monotonic() - self.batch_since)
        self.batch_since = None
        if published > self._published:
            self.telemetry.observe_latencies(
                time.time(), [records[0].timestamp for records in batch.values() if records]
            )

    def stalled(self, limit_s: float) -> str | None:
        """Why the worker counts as stalled, or None."""
        now = time.monotonic()
        if self.batch_since is not None and now - self.batch_since > limit_s:
            return (
                f"a batch has been in flight for {now - self.batch_since:.0f}s (limit {limit_s:g}s, "
                "JOURNEY_HEALTH_STALL_S): Redis or Kafka may be unreachable; the worker's log says which"
            )
        if now - self.polled_at > limit_s:
            what = "since it started (still connecting?)" if not self.connected else ""
            return f"Kafka not polled for {now - self.polled_at:.0f}s{' ' + what if what else ''} (limit {limit_s:g}s, JOURNEY_HEALTH_STALL_S)"
        return None


class ObservedWorker(Protocol):
    """What the engine reads of the worker (`streams.live.worker.Worker`), which builds it."""

    settings: Settings
    pulse: Pulse
    consumer: AIOKafkaConsumer
    processor: Processor
    redis: Redis | RedisCluster
    stopping: asyncio.Event


class WorkerEngine:
    """The `streams.http.engine.Engine` of an aiokafka `Worker`."""

    def __init__(self, worker: ObservedWorker) -> None:
        self.worker = worker

    @property
    def telemetry(self) -> Telemetry:
        return self.worker.pulse.telemetry

    def _reason(self, exc: BaseException) -> str:
        return printable(redact(str(exc) or type(exc).__name__, self.worker.settings.secrets()))

    def liveness(self) -> str | None:
        return self.worker.pulse.stalled(self.worker.settings.health_stall_s)

    async def readiness(self) -> str | None:
        worker, s = self.worker, self.worker.settings
        if worker.stopping.is_set():
            return "stopping"
        if not worker.pulse.connected:
            return f"connecting to Kafka at {s.kafka_bootstrap}"
        if not worker.pulse.joined:
            return f"joining consumer group {s.consumer_group}"
        try:
            await worker.redis.ping()
        except (RedisError, OSError) as exc:
            return f"Redis at {s.redis_shown} does not answer: {self._reason(exc)}"
        return None

    async def refresh(self) -> None:
        worker, t = self.worker, self.telemetry
        topic = worker.settings.topic_touchpoints
        assigned = sorted(tp.partition for tp in worker.consumer.assignment() if tp.topic == topic)
        t.assigned = len(assigned)
        lags = {}
        for partition in assigned:
            tp = TopicPartition(topic, partition)
            try:
                highwater = worker.consumer.highwater(tp)
                if highwater is None:  # not fetched from yet
                    continue
                position = await asyncio.wait_for(worker.consumer.position(tp), POSITION_WAIT_S)
            except Exception:  # revoked meanwhile (an assertion in aiokafka), or no position yet
                continue
            lags[partition] = max(0, highwater - position)
        t.lags = lags
        if not assigned:
            t.due_customers = t.outbox_messages = 0
            return
        store = worker.processor.store
        marks, outbox = await store.marks_and_backlog(assigned)
        wall = time.time()
        event_clock = worker.settings.clock == "event"
        now = {p: marks[p].clock if event_clock else wall for p in assigned if marks[p].clock or not event_clock}
        due = await store.due_counts(now) if now else {}
        t.outbox_messages = sum(outbox.values())
        t.due_customers = sum(due.values())

    async def _partition(self, customer_id: str) -> int | None:
        """The input partition holding the customer: Kafka's default partitioner's first, then every other."""
        worker = self.worker
        known = worker.consumer.partitions_for_topic(worker.settings.topic_touchpoints)
        count = len(known) if known else worker.settings.partitions
        guess = partition_for(customer_id.encode(), count)
        store = worker.processor.store
        return await find_async(store.client, store.keys, customer_id, guess, count)

    async def profile(self, customer_id: str) -> dict[str, Any] | None:
        worker = self.worker
        store = worker.processor.store
        try:
            partition = await self._partition(customer_id)
            if partition is None:
                return None
            states = await store.load_states({customer_id: partition})
            state = states.get(customer_id)
            if state is None:
                return None
            history = [read_history(raw, customer_id) for raw in await store.history(partition, customer_id)]
        except (RedisError, OSError) as exc:
            raise Unavailable(f"cannot read from Redis at {worker.settings.redis_shown}: {self._reason(exc)}") from None
        except (ValidationError, ValueError):
            log.warning("the stored state of a customer asked for on /customers cannot be read")
            raise Unavailable(
                "this customer's stored state cannot be read (written by another version, or damaged)", status=500
            ) from None
        return build_profile(state, history, worker.processor.model)
