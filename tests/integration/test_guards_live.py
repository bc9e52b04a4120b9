"""The worker on a real broker and a real Redis against what used to stall or poison it: a customer state
that cannot be read, an event from the far future in event-clock mode, a 2 MB input."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka.partitioner import murmur2
from kafka import KafkaProducer

from streams.core import CustomerState, reasons
from streams.core.timeguard import TOO_LATE

pytestmark = pytest.mark.integration

DAY = 86_400.0


def touchpoint(event_id: str, customer: str, at: datetime, kind: str = "purchase") -> dict:
    e = {
        "event_id": event_id,
        "customer_id": customer,
        "occurred_at": at.isoformat(),
        "stage": "purchase" if kind == "purchase" else "pre_purchase",
        "touchpoint": kind,
        "channel": "web",
    }
    if kind == "purchase":
        e["payload"] = {"kind": "order", "amount": 30.0, "currency": "EUR"}
    return e


def partition_of(customer: str, partitions: int) -> int:
    return (murmur2(customer.encode()) & 0x7FFFFFFF) % partitions


def state_of(d, customer: str) -> CustomerState:
    raw = d.redis.get(d.keys.state(d.partition_of(customer), customer))
    assert raw is not None, f"no state for {customer}"
    return CustomerState.from_json(raw)


def test_a_poisoned_state_quarantines_its_customer_while_the_batch_applies_the_others(deploy):
    """Before: the batch holding the customer failed, and was retried forever: nobody else was applied."""
    d = deploy()
    at = datetime(2026, 3, 1, tzinfo=UTC)
    poisoned = json.dumps({"id": "mallory", "fs": at.timestamp(), "ls": at.timestamp(), "p": 2, "sp": None}).encode()
    d.redis.set(d.keys.state(d.partition_of("mallory"), "mallory"), poisoned)
    others = [f"cust-{i}" for i in range(6)]
    events = [touchpoint(f"{c}-1", c, at + timedelta(hours=i)) for i, c in enumerate(others)]
    events.insert(3, touchpoint("mallory-1", "mallory", at))
    offsets = d.produce(events)  # one produce before the worker starts: one batch
    worker = d.start_worker()
    d.wait_caught_up()

    for c in others:
        assert state_of(d, c).purchases == 1
    assert {c["customer_id"] for c in d.changes()} == set(others)
    [letter] = d.dead_letters()
    assert letter["source_offset"] == offsets[3] and letter["error"].startswith(reasons.QUARANTINED)
    assert json.loads(base64.b64decode(letter["raw_value_b64"]))["event_id"] == "mallory-1"
    record = d.redis.hgetall(d.keys.quarantine(d.partition_of("mallory"), "mallory"))
    assert record[b"state"] == poisoned and b"sp" in record[b"reason"]
    assert d.redis.get(d.keys.state(d.partition_of("mallory"), "mallory")) == poisoned
    assert d.wait_stat(worker, "quarantined", 1) == 1
    assert "quarantined" in d.worker_log() and "journey release" in d.worker_log()


def test_a_far_future_event_is_dead_lettered_and_fires_no_due_time_in_event_clock_mode(deploy):
    """Before: its time became the partition's clock, and every customer due before 2100 was flagged at once."""
    d = deploy(JOURNEY_CLOCK="event", JOURNEY_MAX_EVENT_AHEAD_S="300")
    partitions = d.settings.partitions
    stranger = next(f"stranger-{i}" for i in range(100) if partition_of(f"stranger-{i}", partitions) == 0)
    buyer = next(f"buyer-{i}" for i in range(100) if partition_of(f"buyer-{i}", partitions) == 0)
    now = time.time()
    first = datetime.fromtimestamp(now - 40 * DAY, UTC)
    # Two purchases 20 days apart, the last 20 days ago: at risk only in 40 days' time.
    offsets = d.produce([touchpoint(f"{buyer}-{i}", buyer, first + timedelta(days=20 * i)) for i in range(2)])
    future = touchpoint("from-2100", stranger, datetime(2100, 1, 1, tzinfo=UTC), "page_view")
    future_offset = d.produce([future])[0]
    ahead = touchpoint("an-hour-ahead", stranger, datetime.fromtimestamp(now + 3600, UTC), "page_view")
    d.produce([ahead])
    d.start_worker()
    d.wait_caught_up()

    letters = sorted(d.dead_letters(), key=lambda dl: dl["source_offset"])
    assert [dl["source_offset"] for dl in letters] == [future_offset, future_offset + 1]
    assert all(dl["error"].startswith(TOO_LATE) and "JOURNEY_MAX_EVENT_AHEAD_S" in dl["error"] for dl in letters)
    assert d.redis.get(d.keys.state(d.partition_of(stranger), stranger)) is None
    changes = d.changes()
    assert not [c for c in changes if c["caused_by"].startswith("inactivity@")]
    assert state_of(d, buyer).lifecycle not in ("at_risk", "lapsed")
    clock = float(d.redis.hget(d.keys.mark(0), "clock") or 0)
    assert clock == pytest.approx((first + timedelta(days=20)).timestamp())
    assert offsets and clock < now


def test_a_2_mb_input_gives_a_dead_letter_under_the_limit_with_its_size_and_hash(deploy):
    """Before: the dead letter carried the whole value (2.7 MB in base64), which a broker with the usual
    1 MB limit refuses, and the publish was retried forever."""
    d = deploy()
    value = json.dumps({"event_id": "big", "customer_id": "c", "pad": "p" * (2 * 1024 * 1024)}).encode()
    producer = KafkaProducer(bootstrap_servers=d.stack.bootstrap, max_request_size=4 * 1024 * 1024)
    try:
        ack = producer.send(d.settings.topic_touchpoints, key=b"c", value=value).get(timeout=30)
    finally:
        producer.close()
    d.input_ends[ack.partition] = max(d.input_ends.get(ack.partition, 0), ack.offset + 1)
    at = datetime(2026, 3, 1, tzinfo=UTC)
    d.produce([touchpoint("after", "c", at)])  # the partition goes on after it
    d.start_worker()
    d.wait_caught_up()

    [letter] = d.dead_letters()
    assert len(json.dumps(letter, separators=(",", ":"))) <= d.settings.max_publish_bytes - 512
    assert letter["source_offset"] == ack.offset and "exceeds" in letter["error"]
    assert letter["truncated"] and letter["raw_value_size"] == len(value)
    assert letter["raw_value_sha256"] == hashlib.sha256(value).hexdigest()
    assert value.startswith(base64.b64decode(letter["raw_value_b64"]))
    assert state_of(d, "c").purchases == 1
