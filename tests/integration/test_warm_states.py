"""The states a worker remembers having written: used only while Redis still holds them.

Unit tests of `WarmStates`, then processors on a real Redis: a second worker writing the same
partition (a rebalance, a worker back from a pause) must make the first one read the state
again instead of building on its own stale copy.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis

from streams.core import CustomerState
from streams.core.intake import RawMessage
from streams.live.processor import Processor
from streams.live.warm_states import WarmStates
from streams.settings import Settings
from streams.store import JourneyStore

START = datetime(2026, 3, 1, 9, tzinfo=UTC)


def _state(cid: str) -> CustomerState:
    return CustomerState(customer_id=cid, first_seen=0.0, last_seen=0.0)


def test_remembered_states_are_trusted_only_under_this_workers_last_token():
    warm = WarmStates(capacity=10)
    token = warm.new_token()
    a = _state("a")
    warm.remember(0, token, {"a": a}, replaced=None)
    assert warm.check(0, token) and warm.get(0, "a") is a
    assert warm.get(1, "a") is None, "a state is remembered for the partition it was written on"
    assert not warm.check(0, "someone-else:1")
    assert warm.get(0, "a") is None, "another writer's token forgets the partition"


def test_tokens_are_unique_across_workers_and_commits():
    first, second = WarmStates(10), WarmStates(10)
    tokens = {first.new_token(), first.new_token(), second.new_token(), second.new_token()}
    assert len(tokens) == 4


def test_a_commit_that_replaced_a_foreign_token_keeps_only_what_it_wrote():
    warm = WarmStates(capacity=10)
    mine = warm.new_token()
    warm.remember(0, mine, {"a": _state("a"), "b": _state("b")}, replaced=None)
    # Another worker wrote partition 0 between this worker's read and its commit.
    later = warm.new_token()
    c = _state("c")
    warm.remember(0, later, {"c": c}, replaced="someone-else:7")
    assert warm.check(0, later)
    assert warm.get(0, "a") is None and warm.get(0, "b") is None
    assert warm.get(0, "c") is c


def test_the_least_recently_written_go_first_past_the_capacity():
    warm = WarmStates(capacity=2)
    t1, t2, t3 = warm.new_token(), warm.new_token(), warm.new_token()
    warm.remember(0, t1, {"a": _state("a")}, replaced=None)
    warm.remember(0, t2, {"b": _state("b")}, replaced=t1)
    warm.remember(0, t3, {"a": _state("a"), "c": _state("c")}, replaced=t2)  # "a" written again: newest
    assert len(warm) == 2
    assert warm.get(0, "b") is None and warm.get(0, "a") is not None and warm.get(0, "c") is not None


def test_a_capacity_of_zero_remembers_nothing():
    warm = WarmStates(capacity=0)
    token = warm.new_token()
    warm.remember(0, token, {"a": _state("a")}, replaced=None)
    assert len(warm) == 0 and warm.get(0, "a") is None


def test_forgetting_partitions_keeps_the_others():
    warm = WarmStates(capacity=10)
    t0, t1 = warm.new_token(), warm.new_token()
    warm.remember(0, t0, {"a": _state("a")}, replaced=None)
    warm.remember(1, t1, {"b": _state("b")}, replaced=None)
    warm.forget_partitions([0])
    assert warm.get(0, "a") is None and not warm.check(0, t0)
    assert warm.check(1, t1) and warm.get(1, "b") is not None


# --------------------------------------------------------------------------- on a real Redis


def _message(offset: int, day: int) -> RawMessage:
    event = {
        "event_id": f"e{offset}",
        "customer_id": "c1",
        "stage": "pre_purchase",
        "touchpoint": "page_view",
        "channel": "web",
        "occurred_at": (START + timedelta(days=day)).isoformat(),
    }
    return RawMessage("touchpoints", 0, offset, b"c1", json.dumps(event).encode())


async def _two_workers_on_one_partition(redis_url: str, prefix: str) -> CustomerState:
    settings = Settings(redis_url=redis_url, key_prefix=prefix, partitions=1)
    client = aioredis.Redis.from_url(redis_url)

    async def publish(messages):
        pass

    store = JourneyStore.for_settings(client, settings)
    first, second = Processor(settings, store, publish), Processor(settings, store, publish)
    await first.process_batch([_message(0, 0)])
    assert first.warm.get(0, "c1") is not None, "the first worker remembers what it wrote"
    # The partition moves to the second worker and back (a rebalance): each applies one event.
    await second.process_batch([_message(1, 1)])
    await first.process_batch([_message(2, 2)])
    state = (await store.load_states(["c1"]))["c1"]
    await client.aclose()
    return state


def test_a_worker_reads_again_what_another_worker_wrote_since(stack):
    state = asyncio.run(_two_workers_on_one_partition(stack.redis_url, "warm-test-a"))
    # Built on its own stale copy, the first worker would have lost the second worker's event.
    assert state.counts == {"page_view": 3}
    assert state.last_seen == (START + timedelta(days=2)).timestamp()


async def _one_worker(redis_url: str, prefix: str) -> tuple[CustomerState, CustomerState]:
    settings = Settings(redis_url=redis_url, key_prefix=prefix, partitions=1)
    client = aioredis.Redis.from_url(redis_url)

    async def publish(messages):
        pass

    store = JourneyStore.for_settings(client, settings)
    processor = Processor(settings, store, publish)
    await processor.process_batch([_message(0, 0)])
    remembered = processor.warm.get(0, "c1")
    await processor.process_batch([_message(1, 1)])
    assert processor.warm.get(0, "c1") is remembered, "the remembered state was used (and changed in place)"
    stored = (await store.load_states(["c1"]))["c1"]
    await client.aclose()
    return stored, remembered


def test_what_a_worker_remembers_is_what_redis_holds(stack):
    stored, remembered = asyncio.run(_one_worker(stack.redis_url, "warm-test-b"))
    assert stored == remembered
    assert stored.counts == {"page_view": 2}
