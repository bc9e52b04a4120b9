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
