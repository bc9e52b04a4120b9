"""commit.lua on a real Redis with more states, due times and history entries than one call takes.

The script writes states, due times and history in chunks (one Redis call per chunk, not per
item); these batches cross the chunk boundaries, so an off-by-one loses or repeats an item.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import redis.asyncio as aioredis

from streams.core import CustomerState
from streams.store import JourneyStore, PartitionCommit

pytestmark = pytest.mark.integration

CUSTOMERS = 1_203  # over two chunks of 500, and a remainder
CHANGES_OF_ONE = 1_010  # history entries of one customer in one batch: the latest 20 cross a chunk boundary


def _state(cid: str, at: float) -> bytes:
    return CustomerState(customer_id=cid, first_seen=at, last_seen=at).to_json()


async def _commit_big_batches(redis_url: str) -> dict:
    client = aioredis.Redis.from_url(redis_url)
    store = JourneyStore(client, "chunk-test", "touchpoints", history_length=20)
    ids = [f"c{i}" for i in range(CUSTOMERS)]
    first = PartitionCommit(0, None, 10, 1.0, token="w:1")
    first.states = {cid: _state(cid, float(i)) for i, cid in enumerate(ids)}
    first.due = {cid: 1000.0 + i for i, cid in enumerate(ids)}
    first.outbox = [b"changes\tc0\t" + json.dumps({"n": n}).encode() for n in range(CHANGES_OF_ONE)]
    first.outbox += [b"changes\tc1\t" + json.dumps({"n": 0}).encode(), b"actions\tc1\t{}"]
    first.history = {"c0": [json.dumps({"n": n}).encode() for n in range(CHANGES_OF_ONE)], "c1": [b'{"n":0}']}
    result = await store.commit([first])
    # A second batch drops the due time of every other customer.
    second = PartitionCommit(0, 10, 11, 2.0, token="w:2")
    second.due = {cid: None for cid in ids[::2]}
    await store.commit([second])
    stored = await store.load_states(dict.fromkeys(ids, 0))
    due = await client.zrange(store.due_key(0), 0, -1, withscores=True)
    history_c0 = [json.loads(h)["n"] for h in await store.history(0, "c0")]
    history_c1 = [json.loads(h)["n"] for h in await store.history(0, "c1")]
    outbox = await client.llen(store.outbox_key(0))
    await client.aclose()
    return {
        "result": result[0],
        "stored": stored,
        "due": due,
        "history_c0": history_c0,
        "history_c1": history_c1,
        "outbox": outbox,
        "ids": ids,
    }


def test_big_batches_are_written_whole(stack):
    out = asyncio.run(_commit_big_batches(stack.redis_url))
    ids = out["ids"]
    assert out["result"].applied and out["result"].previous_writer is None
    assert set(out["stored"]) == set(ids)
    assert all(out["stored"][cid].first_seen == float(i) for i, cid in enumerate(ids))
    due = {member.decode(): score for member, score in out["due"]}
    assert due == {cid: 1000.0 + i for i, cid in enumerate(ids) if i % 2 == 1}
    # the latest change first, 20 kept
    assert out["history_c0"] == list(range(CHANGES_OF_ONE - 1, CHANGES_OF_ONE - 21, -1))
    assert out["history_c1"] == [0]
    assert out["outbox"] == CHANGES_OF_ONE + 2


async def _history_over_an_earlier_list(redis_url: str) -> dict:
    """A history an earlier version kept as a Redis list: read as it is, then carried on as a string."""
    client = aioredis.Redis.from_url(redis_url)
    store = JourneyStore(client, "list-history", "touchpoints", history_length=3)
    key = store.history_key(0, "old")
    await client.rpush(key, b'{"n":2}', b'{"n":1}', b'{"n":0}')  # latest first, as LPUSH left it
    before = [json.loads(h)["n"] for h in await store.history(0, "old")]
    commit = PartitionCommit(0, None, 1, 1.0, token="w:1")
    commit.states = {"old": _state("old", 1.0)}
    commit.history = {"old": [b'{"n":3}', b'{"n":4}']}
    await store.commit([commit])
    kind = await client.type(key)
    after = [json.loads(h)["n"] for h in await store.history(0, "old")]
    again = PartitionCommit(0, 1, 2, 2.0, token="w:2")
    again.states = {"old": _state("old", 2.0)}
    again.history = {"old": [b'{"n":5}']}
    await store.commit([again])
    last = [json.loads(h)["n"] for h in await store.history(0, "old")]
    await client.aclose()
    return {"before": before, "kind": kind, "after": after, "last": last}


def test_a_history_kept_as_a_list_by_an_earlier_version_is_read_and_carried_on(stack):
    out = asyncio.run(_history_over_an_earlier_list(stack.redis_url))
    assert out["before"] == [2, 1, 0]
    assert out["kind"] == b"string"
    assert out["after"] == [4, 3, 2] and out["last"] == [5, 4, 3]
