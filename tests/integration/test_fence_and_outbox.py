"""Two guarantees of the commit path, on a real Redis, each driven step by step through `Processor`:

- **The offset fence** (`streams/store/lua/commit.lua`): a worker that lost its partition must not
  overwrite the new owner's work. Its commit names the offset it read; when the partition has moved
  on since, the commit is refused whole (states, due times, outbox, history, mark), the batch is
  counted as fenced, nothing of it is published, and the states the worker remembered of that
  partition (`streams/live/warm_states.py`) are forgotten: they were changed in place for a batch
  Redis never took.
- **The leftover outbox**: a worker that crashed after its commit landed and before the outbox was
  published and trimmed leaves entries behind. The next worker publishes them, oldest first and
  before anything newer, from its next batch or from its sweep; nothing is lost, and the outbox
  ends empty.

The interleavings a rebalance or a crash produce are made deterministic by a store that runs one
step of another worker just before its own commit (`_InterleavedStore`), and by a publish that
fails once. Kafka plays no part: the processor hands its messages to a `publish` callable, which
these tests keep.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from streams.core.intake import RawMessage
from streams.live import outbox
from streams.live.outbox import OutboundMessage
from streams.live.processor import Processor
from streams.settings import Settings
from streams.store import JourneyStore, Keys, PartitionCommit
from streams.store.journey import CommitResult

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 1, 9, tzinfo=UTC)
TOPIC = "touchpoints"


def _event(event_id: str, customer: str, day: float, kind: str = "page_view") -> dict:
    event = {
        "event_id": event_id,
        "customer_id": customer,
        "stage": "purchase" if kind == "purchase" else "pre_purchase",
        "touchpoint": kind,
        "channel": "web",
        "occurred_at": (START + timedelta(days=day)).isoformat(),
    }
    if kind == "purchase":
        event["payload"] = {"kind": "order", "amount": 40, "currency": "EUR"}
    return event


def _message(offset: int, event: dict) -> RawMessage:
    return RawMessage(TOPIC, 0, offset, event["customer_id"].encode(), json.dumps(event).encode())


def _settings(redis_url: str, **overrides) -> Settings:
    """A deployment of its own: a fresh key prefix on the shared Redis, one input partition."""
    prefix = f"guard-{uuid.uuid4().hex[:10]}"
    return Settings(redis_url=redis_url, key_prefix=prefix, topic_touchpoints=TOPIC, partitions=1, **overrides)


class _Published:
    """A `publish` callable that keeps what it was given; it can be told to fail (a crash) on its next call."""

    def __init__(self) -> None:
        self.messages: list[OutboundMessage] = []
        self.fail_next = False

    async def __call__(self, messages: list[OutboundMessage]) -> None:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("the worker died while publishing")
        self.messages.extend(messages)


class _InterleavedStore(JourneyStore):
    """A real store that, once, runs another step (another worker's batch) just before its own commit.

    That is what a rebalance does to a slow worker: it read the partition's mark, then the partition
    moved to another worker, which applied more of it, and only then does the first worker commit.
    """

    before_commit: Callable[[], Awaitable[None]] | None = None

    async def commit(self, commits: list[PartitionCommit]) -> dict[int, CommitResult]:
        step, self.before_commit = self.before_commit, None
        if step is not None:
            await step()
        return await super().commit(commits)


class _ReplyLostStore(JourneyStore):
    """A real store whose next commit lands in Redis but whose reply never arrives (the connection drops)."""

    lose_next_reply = False

    async def commit(self, commits: list[PartitionCommit]) -> dict[int, CommitResult]:
        results = await super().commit(commits)
        if self.lose_next_reply:
            self.lose_next_reply = False
            raise RedisConnectionError("connection lost before the reply")
        return results


async def _snapshot(client: aioredis.Redis, prefix: str) -> dict[bytes, object]:
    """Every key of the deployment with its whole value, whatever its type."""
    out: dict[bytes, object] = {}
    async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        kind = (await client.type(key)).decode()
        if kind == "string":
            out[key] = await client.get(key)
        elif kind == "list":
            out[key] = await client.lrange(key, 0, -1)
        elif kind == "zset":
            out[key] = await client.zrange(key, 0, -1, withscores=True)
        elif kind == "hash":
            out[key] = await client.hgetall(key)
        else:
            raise AssertionError(f"unexpected key type {kind} of {key!r}")
    return out


def _ids(messages: list[OutboundMessage]) -> list[str]:
    """The change, action or dead-letter identity of each message, in order."""
    out = []
    for m in messages:
        value = json.loads(m.value)
        out.append(value.get("change_id") or value.get("action_id") or f"dead-letter@{value.get('offset')}")
    return out


# --------------------------------------------------------------------------- the offset fence


async def _a_batch_behind_the_new_owner(redis_url: str) -> dict:
    settings = _settings(redis_url)
    client = aioredis.Redis.from_url(redis_url)
    try:
        old_store = _InterleavedStore.for_settings(client, settings)
        old_published, new_published = _Published(), _Published()
        old = Processor(settings, old_store, old_published)
        new = Processor(settings, JourneyStore.for_settings(client, settings), new_published)

        await old.process_batch([_message(0, _event("e0", "c1", 0))])
        assert old.warm.get(0, "c1") is not None, "the old owner remembers what it wrote"
        published_before = len(old_published.messages)

        # The old owner reads offset 0 and applies 1..2; before it commits, the new owner applies 1..3.
        batch = [_message(1, _event("e1", "c1", 1, "purchase")), _message(2, _event("e2", "c2", 2))]
        later = [*batch, _message(3, _event("e3", "c1", 3))]
        after_new_owner: dict = {}

        async def new_owner_applies_more() -> None:
            await new.process_batch(later)
            after_new_owner.update(await _snapshot(client, settings.key_prefix))

        old_store.before_commit = new_owner_applies_more
        await old.process_batch(batch)
        after_fenced = await _snapshot(client, settings.key_prefix)
        forgotten = (old.warm.get(0, "c1"), old.warm.get(0, "c2"), len(old.warm))

        # A fenced commit asks the worker to seek the partition from Redis's mark; until it has, the
        # processor applies none of the partition's input.
        asked_to_seek = 0 in old.rewound
        await old.process_batch([_message(4, _event("e4", "c1", 4))])
        untouched_until_sought = (await JourneyStore.for_settings(client, settings).load_states({"c1": 0}))["c1"]
        # Given the partition back (the worker sought it: as `Worker.seek_to_applied` does), the old owner
        # builds on the new owner's state, not its own copy.
        old.rewound.discard(0)
        old.applied[0] = 3
        await old.process_batch([_message(4, _event("e4", "c1", 4))])
        final = (await JourneyStore.for_settings(client, settings).load_states({"c1": 0}))["c1"]
        return {
            "prefix": settings.key_prefix,
            "after_new_owner": after_new_owner,
            "after_fenced": after_fenced,
            "old_stats": old.stats,
            "old_published_in_fenced_batch": old_published.messages[published_before:],
            "new_published": new_published.messages,
            "forgotten": forgotten,
            "asked_to_seek": asked_to_seek,
            "untouched_until_sought": untouched_until_sought,
            "final": final,
        }
    finally:
        await client.aclose()


def test_a_commit_behind_the_new_owner_is_fenced_and_changes_nothing(stack, caplog):
    caplog.set_level(logging.WARNING, logger="streams.live.processor")
    out = asyncio.run(_a_batch_behind_the_new_owner(stack.redis_url))
    prefix = out["prefix"]
    mark = out["after_new_owner"][Keys(prefix, TOPIC).mark(0).encode()]
    assert mark[b"offset"] == b"3", "the new owner applied the partition up to offset 3"

    # Nothing of the stale batch reached Redis: states, due times, outbox, history, the mark.
    assert out["after_fenced"] == out["after_new_owner"]
    assert out["old_stats"].fenced_batches == 1
    assert out["old_published_in_fenced_batch"] == [], "a fenced batch publishes nothing"
    assert "partition 0 moved on to offset 3" in caplog.text
    assert out["forgotten"] == (None, None, 0), "the states changed in place for the refused batch are forgotten"

    # The new owner's outputs stand: c1 became `new` with its purchase; the old owner's next batch built on them.
    assert any(json.loads(m.value).get("to") == "new" for m in out["new_published"])
    assert out["asked_to_seek"], "a fenced commit makes the worker seek the partition from Redis's mark"
    assert out["untouched_until_sought"].counts == {"page_view": 2, "purchase": 1}, "nothing applied before the seek"
    final = out["final"]
    assert final.counts == {"page_view": 3, "purchase": 1}
    assert final.purchases == 1 and final.lifecycle == "new"


async def _a_sweep_behind_the_new_owner(redis_url: str) -> dict:
    settings = _settings(redis_url, clock="event")
    client = aioredis.Redis.from_url(redis_url)
    try:
        old_store = _InterleavedStore.for_settings(client, settings)
        old_published, new_published = _Published(), _Published()
        old = Processor(settings, old_store, old_published)
        new = Processor(settings, JourneyStore.for_settings(client, settings), new_published)

        # c1 buys on day 0 (at risk 90 days later); another customer moves the partition's clock to day 95.
        await old.process_batch([_message(0, _event("e0", "c1", 0, "purchase")), _message(1, _event("e1", "c2", 95))])
        published_before = len(old_published.messages)
        after_new_owner: dict = {}

        async def new_owner_applies_more() -> None:
            await new.process_batch([_message(2, _event("e2", "c3", 96))])
            after_new_owner.update(await _snapshot(client, settings.key_prefix))

        old_store.before_commit = new_owner_applies_more
        advanced = await old.sweep([0])
        return {
            "advanced": advanced,
            "after_new_owner": after_new_owner,
            "after_fenced": await _snapshot(client, settings.key_prefix),
            "old_stats": old.stats,
            "old_published_in_sweep": old_published.messages[published_before:],
            "forgotten": len(old.warm),
        }
    finally:
        await client.aclose()


def test_a_sweep_behind_the_new_owner_is_fenced_and_changes_nothing(stack):
    """The fence guards what time changes too: c1's at-risk change is the new owner's to make."""
    out = asyncio.run(_a_sweep_behind_the_new_owner(stack.redis_url))
    assert out["advanced"] == 1, "c1 was due: the sweep did try to commit"
    assert out["after_fenced"] == out["after_new_owner"]
    assert out["old_stats"].fenced_batches == 1
    assert out["old_published_in_sweep"] == []
    assert out["forgotten"] == 0


# --------------------------------------------------------------------------- the leftover outbox


BATCH_1 = [
    _message(0, _event("e0", "c1", 0)),
    _message(1, _event("e1", "c1", 1, "purchase")),
    _message(2, _event("e2", "c2", 2)),
]
BATCH_2 = [_message(3, _event("e3", "c3", 3)), _message(4, _event("e4", "c2", 4, "purchase"))]


async def _undisturbed(redis_url: str, batches: list[list[RawMessage]]) -> list[OutboundMessage]:
    """What the batches publish when nothing fails: the reference."""
    settings = _settings(redis_url)
    client = aioredis.Redis.from_url(redis_url)
    try:
        published = _Published()
        processor = Processor(settings, JourneyStore.for_settings(client, settings), published)
        for batch in batches:
            await processor.process_batch(batch)
        return published.messages
    finally:
        await client.aclose()


async def _crash_between_commit_and_trim(redis_url: str, then: str) -> dict:
    """Batch 1 commits, then its worker dies publishing; a restarted worker goes on as `then` says."""
    settings = _settings(redis_url)
    client = aioredis.Redis.from_url(redis_url)
    store = JourneyStore.for_settings(client, settings)
    outbox_key = store.outbox_key(0)
    try:
        crashed = _Published()
        crashed.fail_next = True
        with pytest.raises(RuntimeError, match="died while publishing"):
            await Processor(settings, store, crashed).process_batch(BATCH_1)
        left_over = await client.lrange(outbox_key, 0, -1)

        published = _Published()
        restarted = Processor(settings, store, published)
        if then == "next batch":  # Kafka redelivers batch 1 (never acknowledged) with batch 2
            await restarted.process_batch([*BATCH_1, *BATCH_2])
        else:  # only the redelivered batch 1, which commits nothing; the sweep finds the leftovers
            await restarted.process_batch(BATCH_1)
            assert published.messages == [], "the redelivered batch alone commits and publishes nothing"
            # At the instant of batch 1's last event nothing is due: the sweep only publishes the leftovers.
            assert await restarted.sweep([0], wall_now=(START + timedelta(days=2)).timestamp()) == 0
            assert [outbox.entry(m) for m in published.messages] == left_over
            await restarted.process_batch(BATCH_2)
        return {
            "left_over": left_over,
            "published": published.messages,
            "outbox_after": await client.llen(outbox_key),
            "redelivered": restarted.stats.redelivered,
        }
    finally:
        await client.aclose()


@pytest.mark.parametrize("then", ["next batch", "sweep"])
def test_a_leftover_outbox_is_published_first_and_nothing_is_lost(stack, then):
    reference = asyncio.run(_undisturbed(stack.redis_url, [BATCH_1, BATCH_2]))
    out = asyncio.run(_crash_between_commit_and_trim(stack.redis_url, then))
    left_over = out["left_over"]
    assert len(left_over) >= 3, "batch 1 left its messages in the outbox (a prospect, a new buyer, ...)"
    assert out["redelivered"] == len(BATCH_1)
    # Exactly the undisturbed run's messages, in its order: batch 1's leftovers first, then batch 2's.
    assert _ids(out["published"]) == _ids(reference)
    assert [m.value for m in out["published"][: len(left_over)]] == [e.split(b"\t", 2)[2] for e in left_over]
    assert out["outbox_after"] == 0


async def _commit_reply_lost(redis_url: str) -> dict:
    settings = _settings(redis_url, retry_max_backoff_s=0.2)
    client = aioredis.Redis.from_url(redis_url)
    try:
        store = _ReplyLostStore.for_settings(client, settings)
        store.lose_next_reply = True
        published = _Published()
        processor = Processor(settings, store, published)
        await processor.process_batch(BATCH_1)
        return {
            "published": published.messages,
            "outbox_after": await client.llen(store.outbox_key(0)),
            "fenced": processor.stats.fenced_batches,
        }
    finally:
        await client.aclose()


def test_a_commit_whose_reply_was_lost_is_published_from_the_outbox_not_dropped_as_fenced(stack):
    """The retried commit finds its own offset already stored: it landed, so its outbox is published once."""
    reference = asyncio.run(_undisturbed(stack.redis_url, [BATCH_1]))
    out = asyncio.run(_commit_reply_lost(stack.redis_url))
    assert len(reference) >= 3
    assert _ids(out["published"]) == _ids(reference), "each message once, in order"
    assert out["fenced"] == 0
    assert out["outbox_after"] == 0
