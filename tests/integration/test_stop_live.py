"""A worker told to stop (SIGTERM) while Kafka or Redis is gone stops inside the 30 s that compose and
Kubernetes give it, on both engines, and the next worker loses nothing of what it left."""

from __future__ import annotations

import re
import signal
import subprocess
import time

import pytest
from waiting import wait_until

from streams.local import sample

pytestmark = pytest.mark.integration

#: `stop_grace_period` in docker-compose.yml, `terminationGracePeriodSeconds` in deploy/kubernetes.
GRACE_S = 30.0
REDIS_RETRY = re.compile(r"Redis .*failed.*retrying")


def stop_within_grace(d, worker) -> float:
    """SIGTERM, then the seconds until the process ended; fails if it outlives the grace (it is killed then)."""
    d.stopped.add(worker.pid)
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    try:
        code = worker.wait(timeout=GRACE_S)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
        ours = [line for line in d.worker_log(worker).splitlines() if "aiokafka" not in line]  # not its retries
        pytest.fail(f"still running {GRACE_S:g}s after SIGTERM:\n" + "\n".join(ours[-60:]))
    assert code == 0, d.worker_log(worker)[-3000:]
    return time.monotonic() - started


def test_a_worker_stopped_while_redis_is_down_stops_in_time_and_the_next_loses_nothing(deploy, redis_server, engine):
    """Its batch in flight cannot land: it is given up after a grace, and what Redis holds (marks,
    outbox) is where the next worker goes on, with the same outputs as an undisturbed run."""
    redis_server.start(appendonly=True)
    events = list(sample.generate(120, seed=37))
    half = len(events) // 2
    d = deploy(JOURNEY_CLOCK="event", JOURNEY_REDIS_URL=redis_server.url, JOURNEY_RETRY_MAX_BACKOFF_S="0.5")
    d.produce(events[:half])
    first = d.start_worker()
    d.wait_caught_up()
    d.redis.close()
    redis_server.shutdown()  # graceful: its AOF holds every write it acknowledged
    d.produce(events[half:])
    wait_until(lambda: REDIS_RETRY.search(d.worker_log(first)), 60, lambda: f"a Redis retry:\n{d.worker_log()}")

    stop_within_grace(d, first)

    redis_server.start(appendonly=True)
    d.start_worker()
    d.wait_caught_up(timeout=90)
    reference = deploy(input_of=d, engine="aiokafka", JOURNEY_CLOCK="event")
    reference.start_worker()
    reference.wait_caught_up()
    assert d.states() == reference.states()
    assert {c["change_id"] for c in d.changes()} == {c["change_id"] for c in reference.changes()}
    assert {a["action_id"] for a in d.actions()} == {a["action_id"] for a in reference.actions()}


def test_a_worker_stopped_after_kafka_went_away_stops_in_time(deploy_on_own_stack, own_stack, engine):
    """Offsets to commit, a group to leave and fetches to close, with no broker to answer any of them."""
    d = deploy_on_own_stack(JOURNEY_CLOCK="event")
    d.produce(list(sample.generate(40, seed=41)))
    worker = d.start_worker()
    d.wait_caught_up()
    broker = own_stack.processes["broker"]
    broker.kill()
    broker.wait(timeout=10)
    time.sleep(2)  # it notices: fetches and heartbeats fail
    assert worker.poll() is None, "a worker waits out a Kafka outage"

    stop_within_grace(d, worker)
