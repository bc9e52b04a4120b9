"""Outages and rebalances on a real broker and real Redis servers: the worker waits, loses nothing,
and applies nothing twice."""

from __future__ import annotations

import subprocess
import time

import pytest

from streams.local import sample
from streams.local.stack import _wait_for_port, free_port, redis_binary

pytestmark = pytest.mark.integration


def outputs(deployment) -> tuple[dict, set, set]:
    return (
        deployment.states(),
        {c["change_id"] for c in deployment.changes()},
        {a["action_id"] for a in deployment.actions()},
    )


def test_a_redis_outage_pauses_the_worker_and_it_finishes_after(deploy, tmp_path):
    """Redis goes away mid-stream and comes back: the worker retries, then ends where an undisturbed run ends."""
    port = free_port()
    command = [
        redis_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--save",
        "",
        "--dir",
        str(tmp_path),
    ]

    def start_redis() -> subprocess.Popen:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        _wait_for_port(port, proc, "redis-server")
        return proc

    own_redis = start_redis()
    try:
        events = list(sample.generate(120, seed=5))
        d = deploy(
            JOURNEY_CLOCK="event", JOURNEY_REDIS_URL=f"redis://127.0.0.1:{port}/0", JOURNEY_RETRY_MAX_BACKOFF_S="0.5"
        )
        half = len(events) // 2
        d.produce(events[:half])
        d.start_worker()
        d.wait_caught_up()
        d.redis.close()

        own_redis.terminate()
        own_redis.wait()
        d.produce(events[half:])
        time.sleep(3)  # the worker now holds a batch it cannot write
        own_redis = start_redis()
        d.wait_caught_up(timeout=90)

        reference = deploy(input_of=d, JOURNEY_CLOCK="event")
        reference.start_worker()
        reference.wait_caught_up()
        assert outputs(d) == outputs(reference)
        assert "Redis" in d.worker_log() and "retrying" in d.worker_log()
    finally:
        own_redis.terminate()
        own_redis.wait()


def test_a_rebalance_mid_stream_applies_every_event_once(deploy):
    """A second worker joins the group mid-stream; partitions move; the outcome equals a single worker's."""
    events = list(sample.generate(800, seed=13))
    half = len(events) // 2
    shared = deploy(JOURNEY_CLOCK="event", JOURNEY_PARTITIONS="4", JOURNEY_BATCH_SIZE="100")
    shared.produce(events[:half])
    first = shared.start_worker()
    shared.wait_stat(first, "events", half // 5, timeout=90)
    second = shared.start_worker()
    deadline = time.monotonic() + 60
    while "assigned partitions: [" not in shared.worker_log(second).replace("assigned partitions: []", ""):
        assert time.monotonic() < deadline, f"the second worker got no partition:\n{shared.worker_log()}"
        time.sleep(0.2)
    shared.produce(events[half:])  # the rest arrives while both workers share the partitions
    shared.wait_caught_up(timeout=120)
    time.sleep(1.5)  # let the stats hashes catch up
    assert shared.stat(second, "events") > 0, "the second worker applied nothing: no rebalance was tested"
    assert shared.stat(first, "events") + shared.stat(second, "events") >= len(events)

    reference = deploy(input_of=shared, JOURNEY_CLOCK="event", JOURNEY_PARTITIONS="4")
    reference.start_worker()
    reference.wait_caught_up(timeout=120)
    assert outputs(shared) == outputs(reference)
