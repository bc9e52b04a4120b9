"""The stream worker: a consumer-group member that applies the input topic in batches.

Run it with `journey worker`. Every setting comes from `JOURNEY_*` environment variables
(`streams/settings.py`, the README). State lives in Redis.

Why aiokafka and not a faust agent: faust's per-event stream machinery costs several times
what the whole batch pipeline does per event (the README has the figures), so no batching
behind it can reach the event rates we need. Here a whole `getmany` batch goes to the processor at once, and offsets are
committed to Kafka only after Redis holds the batch's effects and Kafka has acknowledged
its outputs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from streams.core.intake import InputMessage
from streams.core.model import Model
from streams.core.money import CurrencyError
from streams.core.playbook.playbook import PlaybookError
from streams.core.rules.compiled import RulesError
from streams.http.app import HttpConfig, ServeError, serve
from streams.http.metrics import Telemetry
from streams.kafka import clients
from streams.kafka.publish import BatchPublisher
from streams.kafka.security import KafkaSetupError
from streams.kafka.topics import ensure_topics
from streams.live.collector import YoungCollector
from streams.live.observed import Pulse, WorkerEngine
from streams.live.processor import Processor
from streams.live.retry import PermanentError, permanent, retrying
from streams.logs import setup_logging
from streams.settings import Settings
from streams.store import JourneyStore
from streams.store import clients as redis_clients

log = logging.getLogger("streams.live.worker")
#: How often applied offsets are committed to Kafka. Redis holds the exact applied offset of each
#: partition; Kafka's committed offset only spares a restarted worker re-reading (and skipping) input.
COMMIT_EVERY_S = 1.0


class _Rebalance(ConsumerRebalanceListener):
    """Before partitions move away, let the batch in flight finish and commit what it applied."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked) -> None:
        self.worker.pulse.joined = False
        async with self.worker.batch_lock:
            await self.worker.commit_offsets()
            # Not needed for correctness (the partition marks' writer tokens tell), but their new owner
            # will write them: the memory is better spent on the partitions this worker keeps.
            topic = self.worker.settings.topic_touchpoints
            self.worker.processor.warm.forget_partitions(tp.partition for tp in revoked if tp.topic == topic)

    async def on_partitions_assigned(self, assigned) -> None:
        self.worker.pulse.joined = True
        log.info("assigned partitions: %s", sorted(tp.partition for tp in assigned))


class Worker:
    """One worker process: consume → process → commit, plus the inactivity sweep and the stats."""

    def __init__(self, settings: Settings, model: Model | None = None) -> None:
        self.settings = settings
        self.stopping = asyncio.Event()
        self.batch_lock = asyncio.Lock()
        self._to_commit: dict[TopicPartition, int] = {}
        self._last_commit = 0.0
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
        """Tell Kafka where the applied input got to (Redis holds the exact mark; this saves re-reading)."""
        self._last_commit = time.monotonic()
        if not self._to_commit:
            return
        offsets = {tp: OffsetAndMetadata(offset, "") for tp, offset in self._to_commit.items()}
        try:
            await self.consumer.commit(offsets)
            self._to_commit.clear()
        except Exception as exc:  # a failed commit only means some re-reading, which the marks make harmless
            log.warning("offset commit failed (the input will be re-read and skipped): %s", exc)

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
            batch = await self.consumer.getmany(timeout_ms=int(s.batch_within_s * 1000), max_records=s.batch_size)
            self.pulse.polled()
            if not batch:
                continue
            messages = [r for records in batch.values() for r in records]
            self.pulse.batch_started(self.processor.stats.published)
            async with self.batch_lock:
                await self._process_until_done(messages)
                self.pulse.batch_applied(batch, self.processor.stats.published)
                for tp, records in batch.items():
                    self._to_commit[tp] = records[-1].offset + 1
                if time.monotonic() - self._last_commit >= COMMIT_EVERY_S:
                    await self.commit_offsets()
            self.collector.after_batch()

    async def _process_until_done(self, messages: list[InputMessage]) -> None:
        while True:
            try:
                return await self.processor.process_batch(messages)
            except PermanentError:  # no retry mends it: the worker stops, saying what to fix
                raise
            except Exception:
                log.exception("processing a batch of %d messages failed; retrying it in 1s", len(messages))
                await asyncio.sleep(1.0)

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
            try:
                # redis-py types `mapping` with invariant union keys, so it refuses a valid dict[str, int].
                await self.redis.hset(self.stats_key, mapping=stats.counters())  # type: ignore[arg-type]
                await self.redis.expire(self.stats_key, 3600)
            except Exception as exc:  # best effort: the processing path retries on its own
                log.warning("could not publish stats: %s", exc)
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
            log.info("stopping: finishing the batch in flight")
            async with self.batch_lock:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await self.commit_offsets()
            await self.consumer.stop()
            await self.producer.stop()
            await self.redis.aclose()
            log.info("stopped")


def run_worker(settings: Settings | None = None, loglevel: str = "info") -> None:
    """Run until SIGTERM / Ctrl-C. A rules or playbook file that does not validate, or a Kafka that refuses
    the TLS or SASL settings, stops it (exit code 2) before it consumes."""
    settings = settings or Settings()
    setup_logging(loglevel, settings.secrets(), settings.log_format)
    try:
        model = settings.load_model()
    except (RulesError, PlaybookError, CurrencyError) as exc:
        log.error("not starting: %s", exc)
        raise SystemExit(2) from None
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
