"""`journey replay --redis`: the states in a real Redis (the local stack's) give the in-memory replay's outputs."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
import redis

from streams.core.model import load_model
from streams.local.sample import SAMPLE_FILE
from streams.replay.run import run_replay
from streams.replay.sources import iter_records

pytestmark = pytest.mark.integration

UNTIL = "2027-01-01T00:00:00Z"
OUTPUTS = ("changes.jsonl", "actions.jsonl")


def replay(path: Path, out: Path, **kw):
    return run_replay(iter_records(path), load_model(), until=datetime.fromisoformat(UNTIL), out_dir=out, **kw)


def test_replay_with_states_in_redis_gives_the_in_memory_outputs(stack, tmp_path):
    memory = replay(SAMPLE_FILE, tmp_path / "memory")
    # A cache of 150 states for 300 customers: states are evicted and loaded back all the time.
    in_redis = replay(SAMPLE_FILE, tmp_path / "redis", redis_url=stack.redis_url, redis_cache=150)
    for name in (*OUTPUTS, "summary.json"):
        assert (tmp_path / "memory" / name).read_bytes() == (tmp_path / "redis" / name).read_bytes(), name
    assert in_redis.summary() == memory.summary()
    # Batches, not one round trip per event.
    assert in_redis.store["states_evicted"] > memory.customers
    assert in_redis.store["redis_round_trips"] < memory.events / 20

    client = redis.Redis.from_url(stack.redis_url)
    try:
        assert len(list(client.scan_iter(match="replay:c:*"))) == memory.customers
    finally:
        client.close()


def test_replay_with_redis_clears_only_the_keys_it_wrote(stack, tmp_path):
    """A key under the replay's prefix that no replay wrote (another tool's) survives `--redis`, twice over."""
    client = redis.Redis.from_url(stack.redis_url)
    try:
        client.set("replay:c:not-ours", b"kept")
        client.set("replay-other:c:x", b"kept")
        first = replay(SAMPLE_FILE, tmp_path / "one", redis_url=stack.redis_url, redis_cache=150)
        second = replay(SAMPLE_FILE, tmp_path / "two", redis_url=stack.redis_url, redis_cache=150)
        assert client.get("replay:c:not-ours") == b"kept"
        assert client.get("replay-other:c:x") == b"kept"
        # the second run started from no state (what the first wrote was cleared), and counted no foreign key
        assert second.summary() == first.summary()
        assert client.scard("replay:index") == first.customers
    finally:
        client.delete("replay:c:not-ours", "replay-other:c:x")
        client.close()
