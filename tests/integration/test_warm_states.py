"""The states a worker remembers having written, on a real Redis: used only while Redis still holds them.

A second worker writing the same partition (a rebalance, a worker back from a pause) must make
the first one read the state again instead of building on its own stale copy. The unit tests of
`WarmStates` itself are in tests/unit/live/test_warm_states.py.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from streams.core import CustomerState
from streams.core.intake import RawMessage
from streams.live.processor import Processor
from streams.settings import Settings
from streams.store import JourneyStore

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 1, 9, tzinfo=UTC)


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
    state = (await store.load_states({"c1": 0}))["c1"]
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
    stored = (await store.load_states({"c1": 0}))["c1"]
    await client.aclose()
    return stored, remembered


def test_what_a_worker_remembers_is_what_redis_holds(stack):
    stored, remembered = asyncio.run(_one_worker(stack.redis_url, "warm-test-b"))
    assert stored == remembered
    assert stored.counts == {"page_view": 2}
