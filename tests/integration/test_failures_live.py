"""Outages and rebalances on a real broker and real Redis servers: the worker waits, loses nothing,
and applies nothing twice."""

from __future__ import annotations

import re

import pytest
from waiting import wait_until

from streams.local import sample

pytestmark = pytest.mark.integration

#: What the processor logs when a Redis call fails and it waits to try again (streams/live/retry.py).
REDIS_RETRY = re.compile(r"Redis .*failed.*retrying")


def outputs(deployment) -> tuple[dict, set, set]:
    return (
        deployment.states(),
        {c["change_id"] for c in deployment.changes()},
        {a["action_id"] for a in deployment.actions()},
    )


def test_a_redis_outage_pauses_the_worker_and_it_finishes_after(deploy, redis_server):
    """Redis goes away mid-stream and comes back: the worker retries, then ends where an undisturbed run ends."""
    redis_server.start(appendonly=True)
    events = list(sample.generate(120, seed=5))
    d = deploy(JOURNEY_CLOCK="event", JOURNEY_REDIS_URL=redis_server.url, JOURNEY_RETRY_MAX_BACKOFF_S="0.5")
    half = len(events) // 2
    d.produce(events[:half])
    d.start_worker()
    d.wait_caught_up()
    d.redis.close()

    assert not REDIS_RETRY.search(d.worker_log()), "no Redis failure before the outage"

    redis_server.shutdown()  # graceful: its AOF holds every write it acknowledged
    d.produce(events[half:])
    # Redis comes back only once the worker is retrying: it then holds work it cannot write.
    wait_until(lambda: REDIS_RETRY.search(d.worker_log()), 60, lambda: f"a Redis retry:\n{d.worker_log()}")
    redis_server.start(appendonly=True)
    d.wait_caught_up(timeout=90)

    reference = deploy(input_of=d, JOURNEY_CLOCK="event")
    reference.start_worker()
    reference.wait_caught_up()
    assert outputs(d) == outputs(reference)
    assert REDIS_RETRY.search(d.worker_log(d.workers[0])), "the worker waited for Redis (and said so)"


def test_a_rebalance_mid_stream_applies_every_event_once(deploy, engine):
    """A second worker joins the group mid-stream; partitions move; the outcome equals a single worker's."""
    events = list(sample.generate(800, seed=13))
    half = len(events) // 2
    shared = deploy(JOURNEY_CLOCK="event", JOURNEY_PARTITIONS="4", JOURNEY_BATCH_SIZE="100")
    shared.produce(events[:half])
    first = shared.start_worker()
    shared.wait_stat(first, "events", half // 5, timeout=90)
    second = shared.start_worker()
    wait_until(
        lambda: "assigned partitions: [" in shared.worker_log(second).replace("assigned partitions: []", ""),
        60,
        lambda: f"a partition for the second worker:\n{shared.worker_log()}",
    )
    shared.produce(events[half:])  # the rest arrives while both workers share the partitions
    shared.wait_caught_up(timeout=120)
    # Each worker publishes its counters about every second: wait until they account for every event,
    # some of them applied by the second worker (else no rebalance was tested).
    wait_until(
        lambda: (
            shared.stat(second, "events") > 0
            and shared.stat(first, "events") + shared.stat(second, "events") >= len(events)
        ),
        30,
        lambda: (
            f"the workers' stats to count {len(events)} events, some by the second worker (first: "
            f"{shared.stat(first, 'events')}, second: {shared.stat(second, 'events')}):\n{shared.worker_log()}"
        ),
    )

    reference = deploy(input_of=shared, engine="aiokafka", JOURNEY_CLOCK="event", JOURNEY_PARTITIONS="4")
    reference.start_worker()
    reference.wait_caught_up(timeout=120)
    assert outputs(shared) == outputs(reference)
