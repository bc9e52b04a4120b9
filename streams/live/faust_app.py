"""The Faust engine: the worker's `Processor` behind a faust-streaming agent, for teams that run Faust.

Start it as any Faust app, `faust -A streams.live.faust_app worker -l info`, or with `journey worker
--engine faust`. It reads the same `JOURNEY_*` settings as the aiokafka worker (`streams/live/worker.py`),
Kafka security included (faust's `broker_credentials`, built from `streams/kafka/security.py`), and
gives the same outputs, Redis keys, metrics and routes: both engines call one processor.

What maps onto what:

- The input and the three output topics are declared in the app with raw bytes serializers. One agent
  takes batches (`Stream.noack_take` with `JOURNEY_BATCH_WITHIN_S`) and hands each to the processor;
  its events are acknowledged only after the batch's Redis commit and publish, so a crash re-delivers
  them and the processor skips what Redis already holds. Outputs go through the same `BatchPublisher`
  (one record batch per partition) over the worker's own producer, not faust's per-message `send`.
- Where a partition resumes is Redis's to say: faust seeks every assigned partition to its committed
  offset once a rebalance is over (`Consumer.perform_seek`); this app's consumer then seeks the input
  partitions to Redis's applied offset + 1 (`_JourneyConsumer.seek_to_committed`), before any of
  their records is delivered. Revoked partitions' remembered states are forgotten.
- The inactivity sweep and the stats are `@app.timer`s over the partitions this worker owns.
- `/metrics`, `/healthz`, `/readyz` and `/customers/{id}` are faust web views over the same handlers
  as the aiokafka worker's endpoint (`streams.http.app.Routes`), on `JOURNEY_HTTP_HOST:JOURNEY_HTTP_PORT`.

Guards against faust's known stalls (its tracker's issues 175 and 640, README "Two engines"): every
batch is acknowledged whole, whatever became of its events, so the unacknowledged set never fills;
the poll size is the batch size and the stream buffer eight batches (faust empties it on a rebalance,
which waits only for the events taken); `within` bounds every wait for a batch, and every fetch's;
and `/healthz` fails when input waits on an owned partition but no batch has been taken for
`JOURNEY_HEALTH_STALL_S` (a consumer that stopped fetching after a rebalance), so an orchestrator
restarts the worker, which resumes from Redis.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import faust
from faust.auth import OAuthCredentials, SASLCredentials, SSLCredentials
from faust.types import TP

from streams.core.model import Model
from streams.http.app import HttpConfig, Routes, _json_errors, log_listening
from streams.http.metrics import Telemetry
from streams.kafka import clients, security
from streams.kafka.publish import BatchPublisher
from streams.kafka.resume import resume_point
from streams.kafka.topics import ensure_topics
from streams.live import stopping
from streams.live.collector import YoungCollector
from streams.live.faust_intake import FastDrainConsumer, FastDrainTransport, ack_all
from streams.live.observed import Pulse, WorkerEngine
from streams.live.outbox import OutboundMessage
from streams.live.processor import Processor
from streams.live.retry import PermanentError, retrying
from streams.live.worker import load_model_or_exit, pass_lost_offsets, process_until_done, publish_stats
from streams.logs import setup_logging
from streams.settings import Settings
from streams.store import JourneyStore
from streams.store import clients as redis_clients

log = logging.getLogger("streams.live.faust_app")
#: How long a partition sought back mid-run (Redis lost writes) may see only records past its new position
#: before the worker gives up waiting for the position's own record and stops (a restart resumes it).
RESYNC_LIMIT_S = 30.0
#: faust's stream buffer, in batches of `JOURNEY_BATCH_SIZE` (README "Two engines": figures, memory).
STREAM_BUFFER_BATCHES = 8


def credentials(settings: Settings) -> Any:
    """faust's `broker_credentials` for the JOURNEY_KAFKA_* settings (None: plaintext)."""
    options = security.options(settings)
    context = options.get("ssl_context")
    mechanism = settings.kafka_sasl_mechanism
    if mechanism == "OAUTHBEARER":
        return OAuthCredentials(oauth_cb=options["sasl_oauth_token_provider"], ssl_context=context)
    if mechanism is not None:
        return SASLCredentials(
            username=options["sasl_plain_username"],
            password=options["sasl_plain_password"],
            ssl_context=context,
            mechanism=mechanism,
        )
    if context is not None:
        return SSLCredentials(context)
    return None


def app_options(settings: Settings) -> dict[str, Any]:
    """faust's settings from ours: the group, the broker and its security, timeouts, buffers, the web server."""
    session = settings.session_timeout_s
    return {
        "broker": [f"kafka://{host.strip()}" for host in settings.kafka_bootstrap.split(",") if host.strip()],
        "broker_credentials": credentials(settings),
        # Tansu holds a join for half the session timeout: the same short settings as the aiokafka worker.
        "broker_session_timeout": session,
        "broker_heartbeat_interval": settings.heartbeat_interval_s,
        "broker_rebalance_timeout": session,
        "broker_request_timeout": max(30.0, 3 * session),
        "broker_max_poll_records": settings.batch_size,
        # Offsets are committed to Kafka only for the tools that show a group's lag: nothing reads them back.
        "broker_commit_interval": 1.0,
        "consumer_auto_offset_reset": "earliest",
        # faust pauses fetching when its stream buffer is 4/5 full and resumes it when 2/5 full: with one
        # batch's worth, every batch the agent took paused and resumed the partitions and left the worker
        # waiting for a fetch. The buffer is cleared on a rebalance, which waits only for taken events.
        "stream_buffer_maxsize": STREAM_BUFFER_BATCHES * settings.batch_size,
        "producer_max_request_size": settings.max_publish_bytes,
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication_factor,
        "web_enabled": settings.http_port != 0,
        "web_bind": settings.http_host,
        "web_host": settings.http_host,
        "web_port": settings.http_port or 6066,
        # faust keeps a data directory even without tables; not in the working directory (read-only images).
        "datadir": os.path.join(tempfile.gettempdir(), f"journey-faust-{settings.consumer_group}"),
    }


@dataclass(frozen=True, slots=True)
class _Stamp:
    """A partition's oldest record time in a batch (Kafka's milliseconds), as the latency metric reads it."""

    timestamp: int


class _ConsumerView:
    """What `WorkerEngine` reads of a consumer, over faust's."""

    def __init__(self, app: faust.App) -> None:
        self.app = app

    def assignment(self) -> set[TP]:
        return set(self.app.consumer.assignment())

    def highwater(self, tp: TP) -> int | None:
        return self.app.consumer.highwater(tp)

    async def position(self, tp: TP) -> int | None:
        return await self.app.consumer.position(tp)

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        count = self.app.consumer.topic_partitions(topic)
        return set(range(count)) if count else None


class FaustWorker:
    """The processor and its bookkeeping inside a Faust app (what `WorkerEngine` observes).

    Built with the app; its Kafka producer is made and started with the app, inside its event loop.
    """

    def __init__(self, app: faust.App, settings: Settings, model: Model | None = None) -> None:
        self.app = app
        self.settings = settings
        self.stopping = asyncio.Event()
        self.redis = redis_clients.async_client(settings, socket_timeout=30, health_check_interval=10)
        self.publisher: BatchPublisher | None = None
        store = JourneyStore.for_settings(self.redis, settings)
        self.processor = Processor(settings, store, self._publish, model)
        self.stats_key = store.keys.stats(socket.gethostname(), os.getpid())
        self.pulse = Pulse(Telemetry(lambda: self.processor.stats, settings.topic_touchpoints))
        self.consumer = _ConsumerView(app)
        self.taken_at = time.monotonic()  # the last batch taken off the stream (the stall watchdog)
        self.collector = YoungCollector()  # as the aiokafka worker: the collector walks only what is new
        #: Input partitions sought back mid-run, and the offset each was sought to (see `_resynced`).
        self.resync: dict[int, tuple[int, float]] = {}
        #: One apply or seek back at a time (the applying task's and the sweep's): a seek made while a batch
        #: was past `_resynced` but not yet applied let that batch's records land right after the new mark.
        self._applying = asyncio.Lock()
        self.security_checked = False  # Kafka's answer to the TLS / SASL settings (`check_security`)
        self._last_log, self._last_events = time.monotonic(), 0
        self.handover: Handover | None = None  # the agent's, once it runs
        self.applier: asyncio.Task[None] | None = None

    async def abandon_after(self, grace: float) -> None:
        """On stop: after `grace`, give up the batch in flight and acknowledge what is held (`Handover.abandon`)."""
        await asyncio.sleep(grace)
        if self.handover is not None and self.applier is not None and self.handover.busy():
            held = self.handover.abandon(self.applier)
            log.warning(stopping.BATCH_GIVEN_UP + " (%d events to read again)", grace, held)

    async def _publish(self, messages: list[OutboundMessage]) -> None:
        assert self.publisher is not None, "published before the app started"
        await self.publisher.publish(messages)

    async def start(self) -> None:
        s = self.settings
        await retrying(lambda: ensure_topics(s), f"creating topics on {s.kafka_bootstrap}", s.retry_max_backoff_s)
        producer = clients.worker_producer(s)
        await retrying(producer.start, f"connecting the producer to {s.kafka_bootstrap}", s.retry_max_backoff_s)
        self.publisher = BatchPublisher(producer, s.max_publish_bytes)
        log.info(
            "faust worker started: group %s, input %s, Redis %s, clock %s",
            s.consumer_group,
            s.topic_touchpoints,
            s.redis_shown,
            s.clock,
        )

    async def stop(self) -> None:
        self.stopping.set()
        if self.publisher is not None:
            await stopping.stop_within(self.publisher.producer.stop(), "the producer")
        await self.redis.aclose()

    def owned(self) -> list[int]:
        topic = self.settings.topic_touchpoints
        return sorted(tp.partition for tp in self.app.consumer.assignment() if tp.topic == topic)

    # -- rebalances ---------------------------------------------------------------------------------

    def revoked(self, revoked: Iterable[TP]) -> None:
        """Forget what this worker remembered of partitions another will write (faust has waited for the
        batch in flight: it waits for every event to be acknowledged before it lets partitions go)."""
        self.pulse.joined = False
        topic = self.settings.topic_touchpoints
        partitions = [tp.partition for tp in revoked if tp.topic == topic]
        self.processor.warm.forget_partitions(partitions)
        for p in partitions:
            self.processor.applied.pop(p, None)
            self.processor.rewound.discard(p)
            self._end_resync(p)

    def assigned(self, assigned: Iterable[TP]) -> None:
        self.pulse.joined = True
        topic = self.settings.topic_touchpoints
        log.info("assigned partitions: %s", sorted(tp.partition for tp in assigned if tp.topic == topic))

    async def resume_offsets(self, tps: Iterable[TP], resync: bool = False) -> dict[TP, int]:
        """Where each input partition among `tps` resumes: Redis's applied offset + 1, or the earliest offset
        Kafka holds (nothing applied yet, or Kafka deleted what follows the mark: reported once as lost).

        A partition whose mark moved while its lost range was being passed is left out and marked rewound:
        it is sought again after the next batch. With `resync` (a seek back mid-run), each partition's
        records past its new position are dropped from the moment it stops counting as rewound, with no
        await in between: else a batch taken before the seek could apply them right after the mark, over
        the gap the seek is about to read again."""
        s, processor = self.settings, self.processor
        todo = sorted({tp for tp in tps if tp.topic == s.topic_touchpoints}, key=lambda tp: tp.partition)
        if not todo:
            return {}
        numbers = [tp.partition for tp in todo]
        marks, _ = await retrying(
            lambda: processor.store.load(numbers, {}), "reading the partition marks", s.retry_max_backoff_s
        )
        beginnings = await retrying(
            lambda: self.app.consumer.earliest_offsets(*todo),
            "asking Kafka for its earliest offsets",
            s.retry_max_backoff_s,
        )
        offsets: dict[TP, int] = {}
        for tp in todo:
            mark = marks[tp.partition]
            point = resume_point(tp.partition, mark.offset, beginnings[tp])
            if point.lost is not None and not await pass_lost_offsets(s, processor, self._publish, point, mark.clock):
                processor.rewound.add(tp.partition)
                continue
            offsets[tp] = point.offset
            applied = point.offset - 1 if point.lost is not None else point.applied
            if applied is None:
                processor.applied.pop(tp.partition, None)
            else:
                processor.applied[tp.partition] = applied
            if resync:
                self._start_resync(tp, point.offset)
            processor.rewound.discard(tp.partition)
            if point.applied is None:
                log.info("partition %d: no offset applied yet: reading from offset %d", tp.partition, point.offset)
            else:
                log.info(
                    "partition %d: offset %d applied: reading from offset %d", tp.partition, point.applied, point.offset
                )
        return offsets

    async def _seek_rewound(self) -> None:
        """Seek the partitions whose Redis mark went back under this worker (Redis restored) to that mark.
        Call holding `_applying`.

        Records of such a partition fetched before the seek may still be in faust's buffers: until the
        record at the new position arrives, later ones are dropped (`_resynced`); the processor skips
        earlier ones, which Redis holds. Meanwhile faust's read offset of the partition is held at the new
        position (`_ReadOffsets`), so that those records do not make faust drop the ones read again."""
        processor = self.processor
        if not processor.rewound:
            return
        topic = self.settings.topic_touchpoints
        held = {tp for tp in self.app.consumer.assignment() if tp.topic == topic}
        wanted = {tp for tp in held if tp.partition in processor.rewound}
        processor.rewound.intersection_update(tp.partition for tp in held)
        offsets = await self.resume_offsets(wanted, resync=True)
        if offsets:
            await self.app.consumer.seek_wait(offsets)

    def _start_resync(self, tp: TP, offset: int) -> None:
        self.resync[tp.partition] = (offset, time.monotonic())
        read_offsets = getattr(self.app.consumer, "_read_offset", None)
        if isinstance(read_offsets, _ReadOffsets):
            read_offsets.held[tp] = offset

    def _end_resync(self, partition: int) -> None:
        self.resync.pop(partition, None)
        read_offsets = getattr(self.app.consumer, "_read_offset", None)
        if isinstance(read_offsets, _ReadOffsets):
            read_offsets.held.pop(TP(self.settings.topic_touchpoints, partition), None)

    def _resynced(self, messages: list[Any]) -> list[Any]:
        """The batch without the records fetched before a partition was sought back (see `_seek_rewound`)."""
        if not self.resync:
            return messages
        kept = []
        for m in messages:
            waiting = self.resync.get(m.partition)
            if waiting is not None:
                offset, since = waiting
                if m.offset > offset:
                    if time.monotonic() - since > RESYNC_LIMIT_S:
                        raise PermanentError(
                            f"partition {m.partition} was sought back to offset {offset} (Redis lost writes), but "
                            f"only later records arrived for {RESYNC_LIMIT_S:.0f}s: restart the worker, which "
                            "resumes from Redis's marks"
                        )
                    continue
                if m.offset == offset:
                    self._end_resync(m.partition)
            kept.append(m)
        return kept

    # -- the agent, the timers ----------------------------------------------------------------------

    async def apply(self, events: Sequence[Any]) -> None:
        """Batches taken off the stream: applied until they have landed in Redis and their outputs in Kafka."""
        async with self._applying:
            messages = self._resynced([event.message for event in events])
            if messages:
                stats = self.processor.stats
                self.pulse.batch_started(stats.published)
                await process_until_done(self.processor, messages)
                oldest: dict[int, list[_Stamp]] = {}
                for m in messages:
                    if m.partition not in oldest and m.timestamp is not None:
                        oldest[m.partition] = [_Stamp(int(m.timestamp * 1000))]
                self.pulse.batch_applied(oldest, stats.published)
            await self._seek_rewound()

    async def sweep(self) -> None:
        try:
            with self.pulse.telemetry.sweep_seconds.time():
                await self.processor.sweep(self.owned())
            if self.processor.rewound:  # a mark found gone back (no input need come to notice it)
                async with self._applying:
                    await self._seek_rewound()
        except PermanentError:
            raise
        except Exception:
            log.exception("the inactivity sweep failed; it runs again in %.1fs", self.settings.sweep_interval_s)

    async def report(self) -> None:
        """Publish the counters to Redis (dashboards, tests, the benchmark) and log them every 10 s."""
        stats = self.processor.stats
        await publish_stats(self.redis, self.stats_key, stats.counters())
        now = time.monotonic()
        if now - self._last_log >= 10:
            rate = (stats.events - self._last_events) / (now - self._last_log)
            self._last_log, self._last_events = now, stats.events
            log.info("%s (%.0f events/s)", " ".join(f"{k}={v}" for k, v in stats.counters().items()), rate)

    def waiting_input(self) -> list[int]:
        """Owned input partitions with records past what this worker applied (as far as the last fetch knows)."""
        waiting = []
        topic = self.settings.topic_touchpoints
        for tp in self.app.consumer.assignment():
            if tp.topic != topic:
                continue
            try:
                highwater = self.app.consumer.highwater(tp)
            except Exception:  # not fetched from yet
                continue
            applied = self.processor.applied.get(tp.partition, -1)
            if highwater is not None and highwater > applied + 1:
                waiting.append(tp.partition)
        return sorted(waiting)


class Handover:
    """Batches taken by the agent, waiting for the one task that applies them, in the order taken.

    faust's `noack_take` stops filling its buffer while the agent's body runs, so an agent that applied
    each batch itself got only what arrived in `within` after the previous apply (a few hundred events,
    each paying Redis's and Kafka's round trips). Here the agent only hands batches over; the applier
    takes all that waited (up to `limit` events) as one batch. One apply runs at a time, in order, so the
    processor's ordering and fencing are those of the inline agent; events are acknowledged only after
    their apply, so a crash re-delivers them. The agent waits while `limit` events are waiting, which
    bounds the unacknowledged events to about twice `limit`.
    """

    def __init__(self, limit: int, stream: Any) -> None:
        self.limit = limit
        self.stream = stream
        self.waiting: list[Any] = []
        self.in_flight: Sequence[Any] = ()  # the events being applied
        self.abandoned = False  # set by `abandon`: events are acknowledged without being applied
        self.filled = asyncio.Event()  # set when events wait
        self.drained = asyncio.Event()  # set when the applier took some

    async def put(self, events: Sequence[Any], applier: asyncio.Task[None]) -> None:
        """Hand a batch over; wait while the applier is `limit` events behind. The applier's error, if it
        stopped, is raised here (the agent then stops with it)."""
        if self.abandoned:
            ack_all(self.stream, events)  # the worker is stopping without them (see `abandon`)
            return
        while len(self.waiting) >= self.limit and not applier.done():
            self.drained.clear()
            drained = asyncio.ensure_future(self.drained.wait())
            try:
                await asyncio.wait([drained, applier], return_when=asyncio.FIRST_COMPLETED)
            finally:
                drained.cancel()
        if applier.done():
            applier.result()  # its error, if it had one
            raise RuntimeError("the task applying the batches stopped")
        self.waiting.extend(events)
        self.filled.set()

    async def apply_all(self, worker: FaustWorker) -> None:
        """Apply what waits, in order, one apply at a time, then acknowledge it; until cancelled."""
        while True:
            if not self.waiting:
                self.filled.clear()
                await self.filled.wait()
                continue
            events = self.in_flight = self.waiting[: self.limit]
            del self.waiting[: self.limit]
            self.drained.set()
            await worker.apply(events)
            self.in_flight = ()
            # All of them, whatever became of each (faust stalls on a full unacked set), in one plain loop.
            ack_all(self.stream, events)
            worker.collector.after_batch()

    def busy(self) -> bool:
        return bool(self.in_flight or self.waiting)

    def abandon(self, applier: asyncio.Task[None]) -> int:
        """Stop applying, and acknowledge every event held (being applied, waiting, and any handed over
        later) without applying it; returns how many were held. For a stop whose batch in flight cannot
        land (Kafka or Redis gone): faust's stop waits until every event taken is acknowledged.

        An acknowledgement only lets faust commit the offset to Kafka, which nothing reads back: the next
        worker resumes from Redis's marks and reads these events again. The apply cancelled here is one a
        crash could have cut short (Redis holds what was applied, its outbox what was not published)."""
        self.abandoned = True
        applier.cancel()
        held = [*self.in_flight, *self.waiting]
        self.in_flight, self.waiting = (), []
        ack_all(self.stream, held)
        return len(held)


class FaustEngine(WorkerEngine):
    """The HTTP routes' engine over the Faust app: the aiokafka worker's, plus a watchdog for faust's stalls."""

    worker: FaustWorker

    def liveness(self) -> str | None:
        reason = super().liveness()
        if reason is not None:
            return reason
        worker = self.worker
        limit = worker.settings.health_stall_s
        idle = time.monotonic() - worker.taken_at
        if worker.pulse.joined and idle > limit:
            waiting = worker.waiting_input()
            if waiting:
                return (
                    f"input waits on partitions {waiting}, but no batch was taken for {idle:.0f}s (limit {limit:g}s, "
                    "JOURNEY_HEALTH_STALL_S): the faust consumer stopped delivering; a restart resumes from Redis"
                )
        return None


class _ReadOffsets(defaultdict[TP, int | None]):
    """faust's read offset of each partition (its fetch loop drops records below it as read already),
    held at no more than a partition's sought-back position while the worker waits for that record
    (`FaustWorker._seek_rewound`).

    faust's fetch loop goes on delivering the records of a fetch made before the seek, and moves the
    read offset on with each: the records read again from the new position would then be dropped, and
    the one the worker waits for never arrive."""

    def __init__(self) -> None:
        super().__init__(lambda: None)
        self.held: dict[TP, int] = {}

    def __setitem__(self, tp: TP, offset: int | None) -> None:
        if self.held:
            held = self.held.get(tp)
            if held is not None and offset is not None and offset > held:
                offset = held
        super().__setitem__(tp, offset)


class _JourneyConsumer(FastDrainConsumer):
    """faust's aiokafka consumer with the engine's fetch loop (`streams/live/faust_intake.py`), and three
    changes: every poll is noted for /healthz, the seek to the committed offsets that ends each rebalance
    goes on to Redis's applied offsets for the input partitions, and its read offsets can be held back
    (`_ReadOffsets`; the fetch loop reads and sets them as faust's does)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_offset = _ReadOffsets()

    def _journey(self) -> FaustWorker | None:
        return getattr(self.app, "journey", None)

    def fetch_max_wait_s(self) -> float | None:
        """A fetch waits no longer than a batch may (`JOURNEY_BATCH_WITHIN_S`), as the aiokafka worker's."""
        worker = self._journey()
        return None if worker is None else worker.settings.batch_within_s

    async def on_started(self) -> None:
        """Connected (its thread's aiokafka consumer has started): /readyz now waits for the group."""
        await super().on_started()
        worker = self._journey()
        if worker is not None:
            worker.pulse.connected = True

    async def _wait_next_records(self, timeout: float) -> Any:
        """One turn of faust's fetch loop, noted for /healthz: with no partition assigned (a member of a
        group with more members than partitions) faust only sleeps here, which counts as polling, as an
        empty `getmany` does on the other engine."""
        found = await super()._wait_next_records(timeout)
        worker = self._journey()
        if worker is not None:
            worker.pulse.polled()
        return found

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = dict(await super().seek_to_committed())
        worker = self._journey()
        if worker is not None:
            offsets = await worker.resume_offsets(self.assignment())
            if offsets:
                await self.seek_wait(offsets)
                committed.update(offsets)
        return committed


class _JourneyTransport(FastDrainTransport):
    Consumer = _JourneyConsumer


class JourneyApp(faust.App):
    """A faust App whose consumer resumes from Redis and whose start and stop bring up the processor's clients."""

    journey: FaustWorker

    def _new_transport(self) -> Any:
        return _JourneyTransport(self.conf.broker_consumer, self)

    async def on_first_start(self) -> None:
        await super().on_first_start()
        # Started by `faust -A`, faust has set up its own handlers: the lines go through ours instead, which
        # redact secrets and escape control characters (`streams/logs.py`), in JOURNEY_LOG_FORMAT.
        root = logging.getLogger()
        if not any(getattr(h, "journey_handler", False) for h in root.handlers):
            for handler in list(root.handlers):
                root.removeHandler(handler)
            settings = self.journey.settings
            # The process's own stderr: faust's worker may have put a logging proxy in `sys.stderr`.
            level = logging.getLevelName(root.getEffectiveLevel())
            setup_logging(level, settings.secrets(), settings.log_format, sys.__stderr__)
        if not self.journey.security_checked:  # `faust -A`: `journey worker` checked before faust started
            await check_security(self.journey.settings)

    async def on_start(self) -> None:
        await super().on_start()
        if self.conf.web_enabled:
            # faust starts its web server after its producer, and only once this returns: started here, the
            # probes answer (503 from /readyz, naming what it waits for) while Kafka cannot be reached yet.
            # Started, it is left alone when faust starts its services (`maybe_start`), and stopped with them.
            await self.web.maybe_start()
            # faust's own options say where (`faust -A … worker --web-port` may have changed them)
            listening = HttpConfig.from_settings(self.journey.settings)
            log_listening(replace(listening, host=self.conf.web_bind, port=self.conf.web_port))
        await self.journey.start()

    async def on_stop(self) -> None:
        # faust's stop waits for every event taken to be acknowledged: with Redis or Kafka gone, the batch in
        # flight would hold it for ever (past the grace compose and Kubernetes give).
        self.journey.stopping.set()
        watchdog = asyncio.ensure_future(self.journey.abandon_after(stopping.BATCH_GRACE_S))
        try:
            await super().on_stop()
        finally:
            watchdog.cancel()
        await self.journey.stop()


def create_app(settings: Settings | None = None, model: Model | None = None) -> JourneyApp:
    """The Faust app over the worker's processor, configured from the JOURNEY_* settings."""
    settings = settings or Settings()
    model = model if model is not None else settings.load_model()
    app = JourneyApp(settings.consumer_group, **app_options(settings))
    worker = FaustWorker(app, settings, model)
    app.journey = worker

    def raw_topic(name: str) -> faust.TopicT:
        return app.topic(
            name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.partitions,
            replicas=settings.replication_factor,
        )

    touchpoints = raw_topic(settings.topic_touchpoints)
    for output in settings.output_topics:
        raw_topic(output)  # declared for faust users' own agents; the processor publishes to them

    @app.agent(touchpoints, name="journey.touchpoints", concurrency=1)
    async def touchpoints_agent(stream: Any) -> None:  # a `faust.Stream`: its type omits `noack_take`
        # Taking and applying are two tasks: while one batch is applied, faust goes on filling the next
        # (its take buffer is frozen while the agent's body runs). See `Handover`.
        handover = worker.handover = Handover(settings.batch_size, stream)
        applier = worker.applier = asyncio.create_task(handover.apply_all(worker), name="journey.apply")
        try:
            async for events in stream.noack_take(settings.batch_size, within=settings.batch_within_s):
                worker.taken_at = time.monotonic()
                await handover.put(events, applier)
        finally:
            applier.cancel()
            await asyncio.gather(applier, return_exceptions=True)

    @app.timer(interval=settings.sweep_interval_s, name="journey.sweep")
    async def sweep() -> None:
        await worker.sweep()

    @app.timer(interval=1.0, name="journey.report")
    async def report() -> None:
        await worker.report()

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, /, *args: Any, signal: Any, **_: Any) -> None:  # args: the revoked set
        worker.revoked(args[0])

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, /, *args: Any, signal: Any, **_: Any) -> None:  # args: the assigned set
        worker.assigned(args[0])

    if settings.http_port:
        routes = Routes(FaustEngine(worker), HttpConfig.from_settings(settings))
        for method, path, handler in routes.table():
            app.page(path, name=f"journey{path.replace('/', '.')}")(_view(method, handler))
    return app


def _view(method: str, handler: Any) -> type[faust.web.View]:
    """A faust web view answering `method` with one of `Routes`' handlers (errors as JSON, as the other engine)."""

    async def answer(self: faust.web.View, request: Any, **_: Any) -> Any:
        return await _json_errors(request, handler)

    return type(f"Journey{handler.__name__.title()}View", (faust.web.View,), {method.lower(): answer})


async def check_security(settings: Settings) -> None:
    """Stop with code 2, saying why, when Kafka refuses the TLS or SASL settings.

    faust would retry a refused handshake inside its own start-up, or stop with its own exit code: this
    is the aiokafka worker's check of its first connection, made before faust connects."""
    problem = await security.diagnose(settings)
    if problem is not None and problem.fatal:
        log.error("not starting: %s", problem.reason)
        raise SystemExit(2)


def run_faust_worker(settings: Settings, loglevel: str = "info") -> None:
    """`journey worker --engine faust`: the app run as `faust -A streams.live.faust_app worker` runs it."""
    asyncio.run(check_security(settings))
    # A rules, playbook or churn model file that does not validate stops the start as it stops the aiokafka
    # worker's: logged, naming the line, exit code 2.
    app = create_app(settings, load_model_or_exit(settings))
    app.journey.security_checked = True
    worker = app.Worker(loglevel=loglevel, override_logging=False, redirect_stdouts=False, quiet=True)
    # faust's start-up spinner writes terminal control codes to stdout even when it is no terminal (a log
    # file, a container's log): lines that are not JSON among JOURNEY_LOG_FORMAT=json's.
    worker.spinner = None
    worker.execute_from_commandline()


def __getattr__(name: str) -> Any:
    """`app`, built from the environment on first use: what `faust -A streams.live.faust_app` finds."""
    if name == "app":
        app = globals()["app"] = create_app()
        return app
    raise AttributeError(name)
