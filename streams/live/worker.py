"""The stream worker: a consumer-group member that applies the input topic in batches.

Run it with `journey worker`. Every setting comes from `JOURNEY_*` environment variables
(`streams/settings.py`, the README). State lives in Redis.

Why aiokafka and not a faust agent: faust's per-event stream machinery costs several times
what the whole batch pipeline does per event (the README has the figures), so no batching
behind it can reach the event rates we need. Here a whole `getmany` batch goes to the processor at once.

Where each partition is read from is Redis's to say, not Kafka's: on every assignment (start,
rebalance, rejoin) the worker seeks each partition to the offset Redis says it applied + 1
(`streams/kafka/resume.py`), and whenever Redis's mark is found behind what this worker applied
(Redis restored under it) it seeks there again. Offsets are still committed to Kafka, after Redis
holds a batch's effects and Kafka has acknowledged its outputs, but only for the tools that show a
group's lag: nothing reads them back.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from collections.abc import Iterable
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError, NoOffsetForPartitionError, OffsetOutOfRangeError
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata

from streams.core.churn.modelfile import ChurnModelError
from streams.core.intake import InputMessage
from streams.core.model import Model
from streams.core.money import CurrencyError
from streams.core.playbook.playbook import PlaybookError
from streams.core.rules.compiled import RulesError
from streams.http.app import HttpConfig, ServeError, serve
from streams.http.metrics import Telemetry
from streams.kafka import clients
from streams.kafka.publish import BatchPublisher
from streams.kafka.resume import ResumePoint, lost_offsets_letter, resume_point
from streams.kafka.security import KafkaSetupError
from streams.kafka.topics import ensure_topics
from streams.live import outbox, stopping
from streams.live.collector import YoungCollector
from streams.live.observed import Pulse, WorkerEngine
from streams.live.processor import Processor, Publish
from streams.live.retry import PermanentError, permanent, retrying
from streams.logs import setup_logging
from streams.settings import Settings
from streams.store import JourneyStore, PartitionCommit
from streams.store import clients as redis_clients

log = logging.getLogger("streams.live.worker")
#: How often applied offsets are committed to Kafka. Redis holds the exact applied offset of each
#: partition, and the worker resumes from it; Kafka's committed offset only shows the group's lag.
COMMIT_EVERY_S = 1.0
#: The pause before reading a partition again whose position Kafka keeps refusing (out of range).
OUT_OF_RANGE_PAUSE_S = 1.0


class _Rebalance(ConsumerRebalanceListener):
    """Before partitions move away, let the batch in flight finish and commit what it applied; when
    partitions arrive, point each at the offset Redis says it applied + 1 before anything is fetched."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        worker = self.worker
        worker.pulse.joined = False
        async with worker.batch_lock:
            await worker.commit_offsets()
            topic = worker.settings.topic_touchpoints
            partitions = [tp.partition for tp in revoked if tp.topic == topic]
            # Not needed for correctness (the partition marks' writer tokens tell), but their new owner
            # will write them: the memory is better spent on the partitions this worker keeps.
            worker.processor.warm.forget_partitions(partitions)
            for p in partitions:
                worker.processor.applied.pop(p, None)
                worker.processor.rewound.discard(p)
            worker.to_seek.difference_update(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        worker = self.worker
        worker.pulse.joined = True
        log.info("assigned partitions: %s", sorted(tp.partition for tp in assigned))
        # Marked before anything is awaited: a new assignment has no positions until its committed offsets
        # are fetched, which starts only now, so no record of these partitions reaches the consume loop
        # before they are in `to_seek`, and none is applied before they are sought. Should the seek fail,
        # they stay there, and the consume loop seeks them first.
        worker.to_seek.update(tp for tp in assigned if tp.topic == worker.settings.topic_touchpoints)
        async with worker.batch_lock:
            await worker.seek_to_applied()


class Worker:
    """One worker process: consume → process → commit, plus the inactivity sweep and the stats."""

    def __init__(self, settings: Settings, model: Model | None = None) -> None:
        self.settings = settings
        self.stopping = asyncio.Event()
        self.batch_lock = asyncio.Lock()
        self._to_commit: dict[TopicPartition, int] = {}
        self._last_commit = 0.0
        #: Input partitions to point at Redis's applied offset + 1 before more of their input is applied.
        self.to_seek: set[TopicPartition] = set()
        self._seeks = 0  # how many seeks so far; `_sought` holds the number of each partition's last one
        self._sought: dict[TopicPartition, int] = {}
        self.collector = YoungCollector()
        self.redis = redis_clients.async_client(settings, socket_timeout=30, health_check_interval=10)
        self.producer = clients.worker_producer(settings)
        self.consumer = clients.worker_consumer(settings)
        self.publisher = BatchPublisher(self.producer, settings.max_publish_bytes)
        store = JourneyStore.for_settings(self.redis, settings)
        self.processor = Processor(settings, store, self.publisher.publish, model)
        self.stats_key = store.keys.stats(socket.gethostname(), os.getpid())
        # Progress marks for /healthz and /readyz, and the metrics of `streams/http/metrics.py`.
        self.pulse = Pulse(Telemetry(lambda: self.processor.stats, settings.topic_touchpoints))

    def owned_partitions(self) -> list[int]:
        topic = self.settings.topic_touchpoints
        return sorted(tp.partition for tp in self.consumer.assignment() if tp.topic == topic)

    async def commit_offsets(self) -> None:
        """Tell Kafka where the applied input got to, for the tools that show a group's lag (the worker
        resumes from Redis's marks, never from these)."""
        self._last_commit = time.monotonic()
        if not self._to_commit:
            return
        offsets = {tp: OffsetAndMetadata(offset, "") for tp, offset in self._to_commit.items()}
        try:
            # aiokafka retries a commit for as long as the group coordinator cannot be reached
            await asyncio.wait_for(self.consumer.commit(offsets), stopping.CLIENT_TIMEOUT_S)
            self._to_commit.clear()
        except Exception as exc:  # nothing reads these back: only the lag Kafka shows is behind
            reason = f"no answer within {stopping.CLIENT_TIMEOUT_S:g}s" if isinstance(exc, TimeoutError) else exc
            log.warning(stopping.COMMIT_FAILED, reason)

    async def seek_to_applied(self, partitions: Iterable[TopicPartition] = ()) -> None:
        """Point these input partitions, and any still waiting in `to_seek`, at the offset Redis says was
        applied + 1, or at the earliest offset Kafka holds when there is no mark or Kafka deleted what
        follows it. Call holding `batch_lock`.

        Redis is read for every partition, every time: whatever it lost (restored from a snapshot,
        failed over to a lagging replica) is then read and applied again, with the same ids.
        """
        s = self.settings
        self.to_seek.update(tp for tp in partitions if tp.topic == s.topic_touchpoints)
        if not self.to_seek and not self.processor.rewound:  # after every batch: nothing to do, mostly
            return
        held = self.consumer.assignment()
        self.to_seek.intersection_update(held)
        self.processor.rewound.intersection_update(tp.partition for tp in held if tp.topic == s.topic_touchpoints)
        todo = sorted(self.to_seek)
        if not todo:
            return
        store = self.processor.store
        numbers = [tp.partition for tp in todo]
        marks, _ = await retrying(lambda: store.load(numbers, {}), "reading the partition marks", s.retry_max_backoff_s)
        beginnings = await retrying(
            lambda: self.earliest_offsets(todo),
            "asking Kafka for its earliest offsets",
            s.retry_max_backoff_s,
        )
        for tp in todo:
            mark = marks[tp.partition]
            point = resume_point(tp.partition, mark.offset, beginnings[tp])
            if point.lost is not None and not await self._pass_lost_offsets(point, mark.clock):
                continue  # someone else moved the mark meanwhile: left in `to_seek`, read again next time
            if tp not in self.consumer.assignment():  # revoked while Redis or Kafka was waited for
                self.to_seek.discard(tp)
                continue
            self.consumer.seek(tp, point.offset)
            self._seeks += 1
            self._sought[tp] = self._seeks
            self.to_seek.discard(tp)
            self._to_commit[tp] = point.offset
            applied = point.offset - 1 if point.lost is not None else point.applied
            if applied is None:
                self.processor.applied.pop(tp.partition, None)
            else:
                self.processor.applied[tp.partition] = applied
            self.processor.rewound.discard(tp.partition)
            if point.applied is None:
                log.info("partition %d: no offset applied yet: reading from offset %d", tp.partition, point.offset)
            else:
                log.info(
                    "partition %d: offset %d applied: reading from offset %d", tp.partition, point.applied, point.offset
                )

    async def earliest_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """The earliest offset Kafka still holds of each partition (retention moves it on)."""
        return await self.consumer.beginning_offsets(partitions)

    async def _pass_lost_offsets(self, point: ResumePoint, clock: float) -> bool:
        return await pass_lost_offsets(self.settings, self.processor, self.publisher.publish, point, clock)

    def _take_rewound(self) -> None:
        """Partitions whose mark the processor found behind (or moved by another writer): to be sought.
        They stay in the processor's `rewound`, which keeps their input from being applied, until sought."""
        topic = self.settings.topic_touchpoints
        self.to_seek.update(TopicPartition(topic, p) for p in self.processor.rewound)

    def _drop_unsought(
        self, batch: dict[TopicPartition, list[ConsumerRecord]], fetched_after: int
    ) -> dict[TopicPartition, list[ConsumerRecord]]:
        """The batch without the records of partitions that wait for a seek, or were sought since the
        `getmany` that returned it began (`fetched_after`: the seek count then): those records may come
        from where the partition was before, and the partition is sought again."""
        for tp in list(batch):
            if tp in self.to_seek or self._sought.get(tp, 0) > fetched_after:
                del batch[tp]
                self.to_seek.add(tp)
        return batch

    async def _out_of_range(self, exc: OffsetOutOfRangeError | NoOffsetForPartitionError) -> None:
        """Kafka refused a partition's position (deleted by retention, or no position at all): seek again."""
        if isinstance(exc, OffsetOutOfRangeError):
            positions = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
            for tp, offset in positions.items():
                log.warning(
                    "partition %d: Kafka does not hold offset %s (deleted by retention, or beyond its end): "
                    "reading from Redis's mark again in %.0fs",
                    tp.partition,
                    offset,
                    OUT_OF_RANGE_PAUSE_S,
                )
            partitions = list(positions)
            await asyncio.sleep(OUT_OF_RANGE_PAUSE_S)
        else:
            partitions = [tp for tp in exc.args if isinstance(tp, TopicPartition)]
            log.warning("partitions %s have no position: reading from Redis's marks", partitions)
        async with self.batch_lock:
            await self.seek_to_applied(partitions or self.consumer.assignment())

    async def start(self) -> None:
        s = self.settings
        await retrying(lambda: ensure_topics(s), f"creating topics on {s.kafka_bootstrap}", s.retry_max_backoff_s)
        await retrying(self.producer.start, f"connecting the producer to {s.kafka_bootstrap}", s.retry_max_backoff_s)
        await retrying(self.consumer.start, f"connecting the consumer to {s.kafka_bootstrap}", s.retry_max_backoff_s)
        self.consumer.subscribe([s.topic_touchpoints], listener=_Rebalance(self))
        self.pulse.connected = True
        log.info(
            "worker started: group %s, input %s, Redis %s, clock %s",
            s.consumer_group,
            s.topic_touchpoints,
            s.redis_shown,
            s.clock,
        )

    async def consume(self) -> None:
        """Take a batch, apply it until it has landed (outages are waited out, never skipped), commit."""
        s = self.settings
        while not self.stopping.is_set():
            fetched_after = self._seeks
            try:
                batch = await self.consumer.getmany(timeout_ms=int(s.batch_within_s * 1000), max_records=s.batch_size)
            except (OffsetOutOfRangeError, NoOffsetForPartitionError) as exc:
                await self._out_of_range(exc)
                continue
            self.pulse.polled()
            if not batch and not self.to_seek and not self.processor.rewound:
                continue
            async with self.batch_lock:
                self._take_rewound()
                batch = self._drop_unsought(batch, fetched_after)
                await self.seek_to_applied()
                if batch:
                    self.pulse.batch_started(self.processor.stats.published)
                    await self._process_until_done([r for records in batch.values() for r in records])
                    self.pulse.batch_applied(batch, self.processor.stats.published)
                    self._take_rewound()
                    for tp, records in batch.items():
                        if tp not in self.to_seek:
                            self._to_commit[tp] = records[-1].offset + 1
                    await self.seek_to_applied()  # those whose mark went back: before anything more is fetched
                if time.monotonic() - self._last_commit >= COMMIT_EVERY_S:
                    await self.commit_offsets()
            if batch:
                self.collector.after_batch()

    async def _process_until_done(self, messages: list[InputMessage]) -> None:
        await process_until_done(self.processor, messages)

    async def sweep(self) -> None:
        """Flag customers who went quiet (no event of theirs will do it) and flush any left-over outbox."""
        while not self.stopping.is_set():
            await asyncio.sleep(self.settings.sweep_interval_s)
            try:
                with self.pulse.telemetry.sweep_seconds.time():
                    await self.processor.sweep(self.owned_partitions())
            except PermanentError:
                raise
            except Exception:
                log.exception("the inactivity sweep failed; it runs again in %.1fs", self.settings.sweep_interval_s)

    async def report(self) -> None:
        """Publish the counters to Redis every second (dashboards, tests, the benchmark) and log them every 10 s."""
        last_log, last_events = time.monotonic(), 0
        while not self.stopping.is_set():
            await asyncio.sleep(1.0)
            stats = self.processor.stats
            await publish_stats(self.redis, self.stats_key, stats.counters())
            now = time.monotonic()
            if now - last_log >= 10:
                rate = (stats.events - last_events) / (now - last_log)
                last_log, last_events = now, stats.events
                log.info("%s (%.0f events/s)", " ".join(f"{k}={v}" for k, v in stats.counters().items()), rate)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        try:  # first, so that probes and scrapes are answered while the worker connects
            http = await serve(WorkerEngine(self), HttpConfig.from_settings(self.settings))
        except ServeError as exc:
            log.error("not starting: %s", exc)
            raise SystemExit(2) from None
        try:
            await self._run()
        finally:
            if http is not None:
                await http.cleanup()

    async def _run(self) -> None:
        await self.start()
        tasks = [asyncio.create_task(job()) for job in (self.consume, self.sweep, self.report)]
        stop = asyncio.create_task(self.stopping.wait())
        try:
            done, _ = await asyncio.wait([stop, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stop and (error := task.exception()) is not None:
                    raise error
        finally:
            await self._stop(tasks)

    async def _stop(self, tasks: list[asyncio.Task]) -> None:
        """Let the batch in flight land, for `stopping.BATCH_GRACE_S`, then stop, each Kafka client within
        `stopping.CLIENT_TIMEOUT_S`. A batch given up here is one that a crash could have left: Redis holds
        what was applied, and its outbox what was not yet published, which the next worker reads from the
        marks and publishes."""
        log.info("stopping: finishing the batch in flight")
        try:
            await asyncio.wait_for(self.batch_lock.acquire(), stopping.BATCH_GRACE_S)
            landed = True
        except TimeoutError:
            landed = False
            log.warning(stopping.BATCH_GIVEN_UP, stopping.BATCH_GRACE_S)
        try:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if landed:
                await self.commit_offsets()
        finally:
            if landed:
                self.batch_lock.release()
        await stopping.stop_within(self.consumer.stop(), "the consumer (leaving the group)")
        await stopping.stop_within(self.producer.stop(), "the producer")
        await self.redis.aclose()
        log.info("stopped")


async def publish_stats(redis: Any, key: str, counters: dict[str, int]) -> None:
    """Write a worker's counters to its Redis stats hash, kept an hour (dashboards, tests, the benchmark).

    Best effort, for both engines: a failure is logged and the next second's write tries again."""
    try:
        # redis-py types `mapping` with invariant union keys, so it refuses a valid dict[str, int].
        await redis.hset(key, mapping=counters)
        await redis.expire(key, 3600)
    except Exception as exc:  # the processing path retries on its own
        log.warning("could not publish stats: %s", exc)


async def pass_lost_offsets(
    settings: Settings, processor: Processor, publish: Publish, point: ResumePoint, clock: float
) -> bool:
    """Say loudly that Kafka deleted input before it was applied (a log line, a counter, a dead
    letter naming the range), then move the partition's mark past the range, so that the range is
    reported once and not on every assignment. False if the mark moved meanwhile (fenced).

    Both engines (this worker and the Faust app) call it when an assignment finds such a range."""
    s = settings
    assert point.lost is not None and point.applied is not None
    first, last = point.lost
    log.error(
        "partition %d: Kafka no longer holds offsets %d-%d (%d offsets) of %s: they were deleted (retention) "
        "before they were applied and are lost. Going on from offset %d, the earliest Kafka holds; the range "
        "is on %s. Keep input longer than the worker may fall behind (retention.ms).",
        point.partition,
        first,
        last,
        point.lost_count,
        s.topic_touchpoints,
        point.offset,
        s.topic_dead_letter,
    )
    letter = outbox.message(s.topic_dead_letter, None, lost_offsets_letter(s.topic_touchpoints, point))
    await retrying(lambda: publish([letter]), "publishing a lost-offsets dead letter", s.retry_max_backoff_s)
    skip = PartitionCommit(point.partition, point.applied, point.offset - 1, clock, token=processor.warm.new_token())
    async with processor.lock:  # the sweep commits too: one writer at a time
        results = await retrying(
            lambda: processor.store.commit([skip]),
            "moving a partition mark past lost offsets",
            s.retry_max_backoff_s,
        )
    if not results[point.partition].applied:
        return False
    processor.stats.offsets_lost += point.lost_count
    return True


async def process_until_done(processor: Processor, messages: list[InputMessage]) -> None:
    """Apply a batch until it has landed: outages are waited out, never skipped (both engines)."""
    while True:
        try:
            return await processor.process_batch(messages)
        except PermanentError:  # no retry mends it: the worker stops, saying what to fix
            raise
        except Exception:
            log.exception("processing a batch of %d messages failed; retrying it in 1s", len(messages))
            await asyncio.sleep(1.0)


def load_model_or_exit(settings: Settings) -> Model:
    """The model the settings name; a file that does not validate stops the start (exit code 2), logging why."""
    try:
        return settings.load_model()
    except (RulesError, PlaybookError, CurrencyError, ChurnModelError) as exc:
        log.error("not starting: %s", exc)
        raise SystemExit(2) from None


def run_worker(settings: Settings | None = None, loglevel: str = "info") -> None:
    """Run until SIGTERM / Ctrl-C. A rules, playbook or churn model file that does not validate, or a Kafka that refuses
    the TLS or SASL settings, stops it (exit code 2) before it consumes."""
    settings = settings or Settings()
    setup_logging(loglevel, settings.secrets(), settings.log_format)
    model = load_model_or_exit(settings)
    log.info(
        "rules %s (%d lifecycle types, %d traits), playbook %s (%d actions)",
        model.rules.source,
        len(model.rules.lifecycle),
        len(model.rules.traits),
        model.playbook.source,
        len(model.playbook.actions),
    )
    money = model.money
    log.info(
        "spend kept in %s (orders up to %s); rates for %d other currencies%s",
        money.currency,
        money.max_order_amount,
        len(money.rates),
        f" from {money.source}" if money.source else " (no rates file: orders in other currencies are dead-lettered)",
    )

    async def main() -> None:  # the Kafka and Redis clients must be made inside the running loop
        worker = Worker(settings, model)
        try:
            await worker.run()
        except KafkaSetupError:  # closed, so that their "unclosed" complaints do not bury the reason
            await worker.consumer.stop()
            await worker.producer.stop()
            await worker.redis.aclose()
            raise

    try:
        asyncio.run(main())
    except KafkaSetupError as exc:  # TLS or credentials refused: retrying would only hide it
        log.error("not starting: %s", exc)
        raise SystemExit(2) from None
    except PermanentError as exc:
        log.error("stopping: %s", exc)
        raise SystemExit(3) from None
    except KafkaError as exc:  # raised by the consumer itself (not authorised to read, ...)
        error = permanent(exc, "consuming the input")
        if error is None:
            raise
        log.error("stopping: %s", error)
        raise SystemExit(3) from None
