"""faust's aiokafka consumer without its per-message task juggling: what the Faust engine (and the
benchmark's faust ceiling, when asked) fetch with.

faust's fetch loop (`faust.transport.consumer.Consumer._drain_messages`, faust-streaming 0.15) hands
every fetched message to the conductor inside `Service.wait_first(callback(message),
suspend_flow.wait())`, so that a delivery blocked on a full stream buffer, on flow control or on the
producer's buffer can be interrupted when a rebalance suspends the flow. That call makes four tasks
per message (the delivery, the suspend event, the consumer's stopped and crashed events), waits on
them and cancels three: the largest share of faust's own cost per event (README, "Two engines").

Almost every delivery finishes without waiting (the conductor puts the event in the stream's queue
with `put_nowait_enhanced`). So this loop starts the delivery itself, step by step: if it finishes at
its first step it costs no task at all; only a delivery that has to wait is finished the way faust
does it, as a task raced against `suspend_flow` with `wait_first`. Everything else (read offsets,
gaps, commits every `broker_commit_every` acks, yielding to the loop every 100 messages, the errors
it stops on) is faust's loop as it is.

`ack_all` acknowledges a taken batch the way `Stream.ack` does each event (the sensors' "event out"
and "message out" included), in one plain loop instead of one coroutine per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Generator, Iterable
from typing import Any, cast

import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode import Service

from streams.live import stopping

#: The fetch loop below is a copy of faust-streaming 0.15's, changed in one place; with another faust,
#: whose loop may have moved on, faust's own runs.
COPIED_FROM_THIS_FAUST = faust.__version__.startswith("0.15.")

log = logging.getLogger("streams.live.faust_intake")


class _Resume:
    """Awaiting this finishes a coroutine that was stepped once by hand and is waiting on `waiting`.

    It passes what the coroutine yields to the task that awaits this, and what the task sends or
    throws (a cancellation too) back into the coroutine: the coroutine goes on as if that task had
    started it."""

    def __init__(self, coro: Coroutine[Any, Any, Any], waiting: Any) -> None:
        self.coro = coro
        self.waiting = waiting

    def __await__(self) -> Generator[Any, None, Any]:
        coro, waiting = self.coro, self.waiting
        while True:
            try:
                yield waiting
            except BaseException as exc:  # the task's cancellation, or an error: the coroutine's to handle
                try:
                    waiting = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    waiting = coro.send(None)
                except StopIteration as done:
                    return done.value


async def _finish(coro: Coroutine[Any, Any, Any], waiting: Any) -> Any:
    return await _Resume(coro, waiting)


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """faust's consumer thread, whose aiokafka consumer waits `FastDrainConsumer.fetch_max_wait_s` for a
    fetch to fill instead of the 1,500 ms faust writes into it (`_create_worker_consumer`), and which
    commits and stops within `stopping.CLIENT_TIMEOUT_S` each when Kafka is gone (`_commit`, `on_thread_stop`)."""

    async def _commit(self, offsets: Any) -> bool:
        # aiokafka retries a commit for as long as the group coordinator cannot be reached; faust's stop
        # waits for one. Nothing reads these offsets back (the Faust engine resumes from Redis's marks).
        try:
            return cast(bool, await asyncio.wait_for(super()._commit(offsets), stopping.CLIENT_TIMEOUT_S))
        except TimeoutError:
            log.warning(stopping.COMMIT_FAILED, f"no answer within {stopping.CLIENT_TIMEOUT_S:g}s")
            return False

    async def on_thread_stop(self) -> None:
        # With Kafka gone, aiokafka's consumer stop raises the cancellation of a fetch it has just cancelled
        # (or waits on the group coordinator). Raised here, it skips the thread's "shut down" signal, and
        # faust's worker then waited a minute for it (past the 30 s grace compose and Kubernetes give).
        await stopping.stop_within(super().on_thread_stop(), "the consumer (leaving the group)")

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        wait = cast(FastDrainConsumer, self.consumer).fetch_max_wait_s()
        if wait is not None:
            # Read by `AIOKafkaConsumer.start` when it makes its fetcher: set before that, it is the fetch's.
            consumer._fetch_max_wait_ms = max(1, round(wait * 1000))
        return consumer


class FastDrainConsumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer whose fetch loop makes a task only for deliveries that have to wait, and
    goes on fetching as soon as a full stream buffer has drained instead of a second later; its fetches
    wait as long as `fetch_max_wait_s` says."""

    _drained: asyncio.Event | None = None

    def fetch_max_wait_s(self) -> float | None:
        """How long a fetch may wait for records on the broker (None: faust's 1.5 s). A broker that finds
        nothing new holds the fetch that long (Tansu: about half of it) even when records arrive meanwhile,
        so this bounds the delay of a record that arrives when the consumer has caught up."""
        return None

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def on_buffer_drop(self, tp: Any) -> None:
        super().on_buffer_drop(tp)
        if self._drained is not None:
            self._drained.set()

    async def _wait_next_records(self, timeout: float) -> Any:
        # When every partition is paused because the stream buffer is under high pressure, faust sleeps a
        # whole second before it looks again, however soon the buffer drains: with a stream that takes
        # batches as large as the buffer, that second came after nearly every batch. Wait for the first
        # partition resumed (`on_buffer_drop`) instead, at most as long.
        if self.flow_active and not self.app.client_only and not self._get_active_partitions():
            if self._drained is None:
                self._drained = asyncio.Event()
            self._drained.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), timeout=1.0)
            if not self._get_active_partitions():
                return {}, self._get_active_partitions()
        return await super()._wait_next_records(timeout)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - faust's loop, run by its Fetcher
        if not COPIED_FROM_THIS_FAUST:
            return await super()._drain_messages(fetcher)
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for
        suspend_flow = self.suspend_flow
        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(CONSUMER_FETCHING)
                ait = getmany(timeout=1.0)
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0
                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            if gap > 1 and r_offset and acks_enabled_for(message.topic):
                                await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None and self._n_acked >= commit_every:
                                self._n_acked = 0
                                await self.commit()
                            delivery = cast(Coroutine[Any, Any, Any], callback(message))
                            try:
                                waiting = delivery.send(None)
                            except StopIteration:
                                pass  # delivered without waiting: no task needed
                            else:  # it waits (full buffer, flow control): as faust does, until done or suspended
                                await self.wait_first(
                                    asyncio.ensure_future(_finish(delivery, waiting)), suspend_flow.wait()
                                )
                            set_read_offset(tp, offset)
                    unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(CONSUMER_FETCHING)


class FastDrainTransport(faust_aiokafka.Transport):
    """faust's aiokafka transport with `FastDrainConsumer` (`App(..., broker=...)` picks it by URL; set it
    with an App subclass's `_new_transport`, as `faust_app.JourneyApp` does)."""

    Consumer = FastDrainConsumer


def ack_all(stream: Any, events: Iterable[Any]) -> None:
    """Acknowledge every event of a batch taken off `stream` (`Stream.ack` for each, without awaiting one
    coroutine per event): each message is marked safe to commit once its last stream has acked it."""
    event_out = stream._on_stream_event_out
    message_out = stream._on_message_out
    for event in events:
        last = event.ack()
        message = event.message
        tp, offset = message.tp, message.offset
        event_out(tp, offset, stream, event)
        if last:
            message_out(tp, offset, message)
