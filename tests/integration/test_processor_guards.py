"""The processor on a real Redis (and, for the publish, a real broker) when one message, one clock or one
customer's state would otherwise stall the others: event times outside the accepted range, a state that
cannot be read (quarantined), a customer the sweep fails on, dead-letter reasons that senders vary at
will, and Kafka errors no retry mends.

The processor hands its outputs to a `publish` callable: here a list, or the worker's real publisher.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from streams.core import CustomerState, reasons
from streams.core.intake import RawMessage
from streams.core.model import Model, load_model
from streams.core.playbook.playbook import Playbook
from streams.core.timeguard import TOO_EARLY, TOO_LATE
from streams.kafka.publish import BatchPublisher
from streams.live.outbox import OutboundMessage
from streams.live.processor import Processor
from streams.live.retry import PermanentError
from streams.settings import Settings
from streams.store import JourneyStore

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 1, 9, tzinfo=UTC)
#: The processors' wall clock: fixed, so these tests decide alike on any day.
WALL = (START + timedelta(days=400)).timestamp()
ORDER = {"kind": "order", "amount": 40, "currency": "EUR"}
_prefixes = iter(range(10**6))


def event(event_id: str, customer: str, at: datetime, kind: str = "purchase", **extra: Any) -> dict:
    e = {
        "event_id": event_id,
        "customer_id": customer,
        "stage": {"page_view": "pre_purchase", "purchase": "purchase"}[kind],
        "touchpoint": kind,
        "channel": "web",
        "occurred_at": at.isoformat(),
        **extra,
    }
    if kind == "purchase":
        e.setdefault("payload", ORDER)
    return e


def message(offset: int, value: dict | bytes, key: bytes | None = None, partition: int = 0) -> RawMessage:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    if key is None and isinstance(value, dict):
        key = value["customer_id"].encode()
    return RawMessage("journey.touchpoints", partition, offset, key, raw)


class Run:
    """One processor on the shared Redis under a key prefix of its own, publishing into a list."""

    def __init__(self, redis_url: str, model: Model | None = None, **settings: Any) -> None:
        # `unchecked`: settings the validation would refuse (a topic name Kafka does not take), set anyway
        unchecked = settings.pop("unchecked", {})
        self.settings = Settings(
            redis_url=redis_url, key_prefix=f"guards{next(_prefixes)}", partitions=1, **settings
        ).model_copy(update=unchecked)
        self.client = aioredis.Redis.from_url(redis_url)
        self.store = JourneyStore.for_settings(self.client, self.settings)
        self.published: list[OutboundMessage] = []

        async def publish(messages: list[OutboundMessage]) -> None:
            self.published.extend(messages)

        self.processor = Processor(self.settings, self.store, publish, model, wall=lambda: WALL)

    def on(self, topic: str) -> list[dict]:
        return [json.loads(m.value) for m in self.published if m.topic == topic]

    @property
    def dead(self) -> list[dict]:
        return self.on(self.settings.topic_dead_letter)

    @property
    def changes(self) -> list[dict]:
        return self.on(self.settings.topic_type_changes)

    async def raw_state(self, cid: str) -> bytes | None:
        return await self.client.get(self.store.state_key(0, cid))

    async def state(self, cid: str) -> CustomerState:
        return (await self.store.load_states({cid: 0}))[cid]


def run(body: Callable[[Run], Awaitable[None]], stack, model: Model | None = None, **settings: Any) -> None:
    async def main() -> None:
        r = Run(stack.redis_url, model, **settings)
        try:
            await body(r)
        finally:
            await r.client.aclose()

    asyncio.run(main())


# --------------------------------------------------------------------------- the guarded clock


def test_events_outside_the_accepted_range_are_dead_lettered_and_move_no_clock(stack):
    """Before: an event dated 2100 was applied, and in event-clock mode it moved the partition's clock
    past every customer's due time, for good."""

    async def body(r: Run) -> None:
        ahead = datetime.fromtimestamp(WALL + 301, UTC)
        await r.processor.process_batch(
            [
                message(0, event("a-1", "a", START)),
                message(1, event("future", "b", datetime(2100, 1, 1, tzinfo=UTC), "page_view")),
                message(2, event("ahead", "b", ahead, "page_view")),
                message(3, event("zero-date", "b", datetime(1970, 1, 1, tzinfo=UTC), "page_view")),
                message(4, event("a-2", "a", START + timedelta(days=1))),
            ]
        )
        assert [(d["source_offset"], d["error"][:40]) for d in r.dead] == [
            (1, TOO_LATE[:40]),
            (2, TOO_LATE[:40]),
            (3, TOO_EARLY[:40]),
        ]
        assert r.processor.stats.by_error == {TOO_LATE: 2, TOO_EARLY: 1}
        assert await r.raw_state("b") is None
        marks, _ = await r.store.load([0], {})
        assert marks[0].offset == 4 and marks[0].clock == (START + timedelta(days=1)).timestamp()
        # Within the tolerance of the wall clock: accepted.
        await r.processor.process_batch([message(5, event("soon", "c", datetime.fromtimestamp(WALL + 300, UTC)))])
        assert len(r.dead) == 3 and (await r.state("c")).purchases == 1

    run(body, stack, clock="event")


def test_a_customer_the_sweep_fails_on_loses_their_due_time_and_the_others_go_on(stack):
    """Before: only a rules loop was caught; any other failure failed the whole sweep of every partition,
    at every sweep, since the due time stayed."""
    shipped = load_model()

    class FailsOnB(Playbook):
        def decide(self, state, change, at, *outcomes):
            if state.customer_id == "b" and change.caused_by.startswith("inactivity@"):
                raise RuntimeError("a bug in the playbook")
            super().decide(state, change, at, *outcomes)

    model = Model(shipped.rules, FailsOnB(shipped.playbook.spec), shipped.dedupe_window)

    async def body(r: Run) -> None:
        await r.processor.process_batch([message(0, event("a-1", "a", START)), message(1, event("b-1", "b", START))])
        before_b = await r.raw_state("b")
        assert await r.processor.sweep([0], wall_now=WALL) == 2
        assert r.processor.stats.sweep_failures == 1
        assert {c["customer_id"] for c in r.changes if c["caused_by"].startswith("inactivity@")} == {"a"}
        assert (await r.state("a")).lifecycle == "lapsed"
        assert await r.raw_state("b") == before_b, "the failed advance is not written back"
        assert await r.client.zscore(r.store.due_key(0), "b") is None
        await r.processor.sweep([0], wall_now=WALL + 86_400)
        assert r.processor.stats.sweep_failures == 1, "nothing is left to fail again"
        # Their next event judges them again (and the same bug dead-letters it, as for any event).
        await r.processor.process_batch([message(2, event("b-2", "b", START + timedelta(days=200), "page_view"))])
        assert [d["source_offset"] for d in r.dead] == [2] and reasons.INTERNAL in r.dead[0]["error"]

    run(body, stack, model=model)


# --------------------------------------------------------------------------- quarantine

#: What `amount: Infinity` left in Redis (defect 1): total spend written as JSON null.
POISONED = json.dumps({"id": "bad", "fs": START.timestamp(), "ls": START.timestamp(), "p": 1, "sp": None}).encode()


def test_a_state_that_cannot_be_read_quarantines_its_customer_and_the_batch_goes_on(stack):
    """Before: one unreadable state failed the whole batch, which was retried forever."""

    async def body(r: Run) -> None:
        await r.client.set(r.store.state_key(0, "bad"), POISONED)
        await r.processor.process_batch(
            [
                message(0, event("good-1", "good", START)),
                message(1, event("bad-1", "bad", START)),
                message(2, event("good-2", "good", START + timedelta(days=1))),
            ]
        )
        assert (await r.state("good")).purchases == 2
        assert {c["customer_id"] for c in r.changes} == {"good"}
        assert [d["source_offset"] for d in r.dead] == [1]
        error = r.dead[0]["error"]
        assert error.startswith(reasons.QUARANTINED) and "sp" in error and "journey release" in error
        assert base64.b64decode(r.dead[0]["raw_value_b64"]) == json.dumps(event("bad-1", "bad", START)).encode()
        assert r.processor.stats.quarantined == 1 and r.processor.stats.by_error == {reasons.QUARANTINED: 1}
        record = await r.client.hgetall(r.store.quarantine_key(0, "bad"))
        assert record[b"state"] == POISONED and b"sp" in record[b"reason"]
        assert record[b"found"] == b"event at journey.touchpoints[0] offset 1" and record[b"since"].startswith(b"2027-")
        assert await r.raw_state("bad") == POISONED, "the state is left as it is"
        marks, _ = await r.store.load([0], {})
        assert marks[0].offset == 2

        # Still quarantined: their next events are dead-lettered too, counted once as a quarantine.
        await r.processor.process_batch([message(3, event("bad-2", "bad", START + timedelta(days=2)))])
        assert [d["source_offset"] for d in r.dead] == [1, 3] and r.processor.stats.quarantined == 1
        assert (await r.client.hgetall(r.store.quarantine_key(0, "bad")))[b"since"] == record[b"since"]

        # A repaired state (or a version that reads it) ends the quarantine at their next event.
        repaired = CustomerState.from_json(POISONED.replace(b"null", b"40.0"))
        await r.client.set(r.store.state_key(0, "bad"), repaired.to_json())
        await r.processor.process_batch([message(4, event("bad-3", "bad", START + timedelta(days=3)))])
        assert len(r.dead) == 2 and (await r.state("bad")).purchases == 2

    run(body, stack)


def test_the_sweep_quarantines_an_unreadable_state_and_advances_the_others(stack):
    async def body(r: Run) -> None:
        await r.processor.process_batch([message(0, event("a-1", "a", START)), message(1, event("b-1", "b", START))])
        await r.client.set(r.store.state_key(0, "b"), b"\xff not json")
        r.processor.warm.forget_all()  # as after a restart: the state is read from Redis
        assert await r.processor.sweep([0], wall_now=WALL) == 2
        assert (await r.state("a")).lifecycle == "lapsed"
        assert r.processor.stats.quarantined == 1
        record = await r.client.hgetall(r.store.quarantine_key(0, "b"))
        assert record[b"state"] == b"\xff not json" and record[b"found"] == b"sweep of journey.touchpoints[0]"
        assert await r.client.zscore(r.store.due_key(0), "b") is None
        await r.processor.sweep([0], wall_now=WALL + 86_400)
        assert r.processor.stats.quarantined == 1

    run(body, stack)


def test_journey_explain_shows_a_quarantined_customer_and_journey_release_ends_it(stack):
    from click.testing import CliRunner

    from streams.cli import main as journey

    async def body(r: Run) -> None:
        weird = "x[/][bold]"  # customer text is printed as it is, never as markup
        for cid in ("bad", weird):
            await r.client.set(r.store.state_key(0, cid), POISONED)
        await r.processor.process_batch([message(0, event("bad-1", "bad", START))])
        env = {"JOURNEY_REDIS_URL": r.settings.redis_dsn, "JOURNEY_KEY_PREFIX": r.settings.key_prefix, "COLUMNS": "200"}
        runner = CliRunner()

        shown = runner.invoke(journey, ["explain", "bad"], env=env)
        assert shown.exit_code == 0, shown.output
        text = shown.output
        assert "bad: QUARANTINED" in text and "cannot be read" in text and "sp" in text
        assert "since: 2027-" in text and "event at journey.touchpoints[0] offset 0" in text
        assert "journey release bad --forget-state" in text and "dead-lettered" in text
        assert f"{len(POISONED)} bytes" in text

        odd = runner.invoke(journey, ["explain", weird], env=env)
        assert odd.exit_code == 0, odd.output
        assert f"{weird}: QUARANTINED" in odd.output and "not yet seen by a worker" in odd.output

        refused = runner.invoke(journey, ["release", "bad"], env=env)
        assert refused.exit_code == 1 and "--forget-state" in refused.output
        assert await r.raw_state("bad") == POISONED
        released = runner.invoke(journey, ["release", "bad", "--forget-state"], env=env)
        assert released.exit_code == 0 and "start over" in released.output, released.output
        assert await r.raw_state("bad") is None and not await r.client.exists(r.store.quarantine_key(0, "bad"))
        again = runner.invoke(journey, ["release", "bad"], env=env)
        assert again.exit_code == 1 and "not quarantined" in again.output

        # Released: their next event starts a new state.
        await r.processor.process_batch([message(1, event("bad-2", "bad", START + timedelta(days=1)))])
        assert (await r.state("bad")).purchases == 1 and len(r.dead) == 1

        # A repaired state: explain shows the customer, with a note; release removes the record.
        await r.client.set(r.store.state_key(0, "fixed"), POISONED)
        await r.processor.process_batch([message(2, event("fixed-1", "fixed", START))])
        await r.client.set(
            r.store.state_key(0, "fixed"), CustomerState.from_json(POISONED.replace(b"null", b"1")).to_json()
        )
        note = runner.invoke(journey, ["explain", "fixed"], env=env)
        assert note.exit_code == 0 and "quarantine record" in note.output and "reads now" in note.output
        assert runner.invoke(journey, ["release", "fixed"], env=env).exit_code == 0
        assert not await r.client.exists(r.store.quarantine_key(0, "fixed"))

    run(body, stack)


# --------------------------------------------------------------------------- bounded memory and messages


def test_unique_40_kb_field_names_do_not_grow_the_workers_counts(stack):
    """Before: `by_error` was keyed on the error text up to its first colon: the sender's field name."""

    async def body(r: Run) -> None:
        batch = []
        for i in range(800):
            name = f"{i:06d}" + "x" * 40_000
            batch.append(message(i, event(f"e{i}", "c", START, "page_view", **{name: 1})))
        await r.processor.process_batch(batch)
        counts = r.processor.stats.by_error
        assert r.processor.stats.dead_lettered == 800 and sum(counts.values()) == 800
        assert list(counts) == ["…: Extra inputs are not permitted"]
        assert all(len(m.value) < 60_000 for m in r.published)

    run(body, stack)


def test_a_2_mb_input_makes_a_dead_letter_within_the_limit(stack):
    async def body(r: Run) -> None:
        value = b'{"event_id": "' + b"z" * (2 * 1024 * 1024) + b'"}'
        await r.processor.process_batch([message(0, value, key=b"c")])
        [letter] = r.published
        assert len(letter.value) <= r.settings.max_publish_bytes - 512
        dead = json.loads(letter.value)
        assert dead["truncated"] and dead["raw_value_size"] == len(value) and "exceeds" in dead["error"]

    run(body, stack)


# --------------------------------------------------------------------------- Kafka errors no retry mends


async def _producer(stack) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, request_timeout_ms=2000)
    await producer.start()
    return producer


def test_an_output_topic_the_broker_does_not_have_is_permanent(stack):
    """Before: every KafkaError was retried, so the worker would have retried this publish for ever."""

    async def body(r: Run) -> None:
        producer = await _producer(stack)
        try:
            r.processor.publish = BatchPublisher(producer).publish
            with pytest.raises(PermanentError) as stopped:
                await asyncio.wait_for(r.processor.process_batch([message(0, event("a-1", "a", START))]), 60)
        finally:
            await producer.stop()
        text = str(stopped.value)
        assert "UnknownTopicOrPartitionError" in text and "journey topics" in text and "JOURNEY_TOPIC_" in text
        # Nothing is lost: the outputs wait in the outbox, with the state, for a worker whose topic exists.
        waiting = await r.store.read_outboxes([0])
        assert waiting[0] and any(entry.startswith(b"no such topic!\t") for entry in waiting[0])
        assert (await r.state("a")).purchases == 1

    # A name Kafka refuses: Tansu creates a topic on first produce, so a valid name would exist by then.
    run(body, stack, unchecked={"topic_type_changes": "no such topic!"}, retry_max_backoff_s=0.2)


def test_a_message_too_large_for_the_producer_is_permanent(stack):
    async def body(r: Run) -> None:
        producer = await _producer(stack)
        try:
            publisher = BatchPublisher(producer, max_request_size=64 * 1024)
            big = OutboundMessage(r.settings.topic_type_changes, b"a", b"x" * (64 * 1024))
            r.processor.publish = lambda messages: publisher.publish([*messages, big])
            with pytest.raises(PermanentError) as stopped:
                await asyncio.wait_for(r.processor.process_batch([message(0, event("a-1", "a", START))]), 60)
        finally:
            await producer.stop()
        assert "MessageSizeTooLargeError" in str(stopped.value) and "JOURNEY_MAX_PUBLISH_BYTES" in str(stopped.value)

    run(body, stack)
