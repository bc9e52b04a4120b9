"""The worker's progress marks (`Pulse`): when /healthz calls it stalled, and what one batch observes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from streams.http.metrics import Telemetry
from streams.live import observed
from streams.live.observed import Pulse


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(observed.time, "monotonic", clock)
    return clock


def _count(telemetry: Telemetry, name: str) -> float:
    return next(s.value for f in telemetry.registry.collect() for s in f.samples if s.name == name)


def test_a_worker_that_polls_is_healthy_and_one_that_stops_polling_is_not(clock):
    pulse = Pulse(Telemetry(dict))
    pulse.connected = True
    assert pulse.stalled(120) is None
    clock.now += 119
    assert pulse.stalled(120) is None
    clock.now += 2
    reason = pulse.stalled(120)
    assert reason is not None and "Kafka not polled for 121s" in reason and "JOURNEY_HEALTH_STALL_S" in reason
    pulse.polled()
    assert pulse.stalled(120) is None


def test_a_worker_that_never_connects_stalls_too(clock):
    pulse = Pulse(Telemetry(dict))
    clock.now += 121
    reason = pulse.stalled(120)
    assert reason is not None and "still connecting" in reason


def test_a_batch_in_flight_too_long_is_a_stall_even_while_polls_are_recent(clock):
    pulse = Pulse(Telemetry(dict))
    pulse.connected = True
    pulse.batch_started(published=0)
    clock.now += 100
    pulse.polled()
    clock.now += 30
    reason = pulse.stalled(120)
    assert reason is not None and "a batch has been in flight for 130s" in reason
    pulse.batch_applied({}, published=0)
    assert pulse.stalled(120) is None


def test_a_batch_observes_its_duration_and_the_latency_of_each_partitions_oldest_record(clock, monkeypatch):
    telemetry = Telemetry(dict)
    pulse = Pulse(telemetry)
    monkeypatch.setattr(observed.time, "time", lambda: 2_000.0)
    record = SimpleNamespace
    batch = {
        "p0": [record(timestamp=1_998_000), record(timestamp=1_999_000)],  # oldest: 2 s before the ack
        "p1": [record(timestamp=1_999_500)],  # 0.5 s
    }
    pulse.batch_started(published=10)
    clock.now += 0.25
    pulse.batch_applied(batch, published=13)
    assert _count(telemetry, "journey_batch_duration_seconds_count") == 1
    assert _count(telemetry, "journey_batch_duration_seconds_sum") == pytest.approx(0.25)
    assert _count(telemetry, "journey_event_to_change_latency_seconds_count") == 2
    assert _count(telemetry, "journey_event_to_change_latency_seconds_sum") == pytest.approx(2.5)
    # a batch that published nothing changed nothing downstream: no latency to tell
    pulse.batch_started(published=13)
    pulse.batch_applied(batch, published=13)
    assert _count(telemetry, "journey_batch_duration_seconds_count") == 2
    assert _count(telemetry, "journey_event_to_change_latency_seconds_count") == 2


class _Redis:
    def __init__(self) -> None:
        self.down = False

    async def ping(self) -> bool:
        if self.down:
            raise ConnectionError("Connection refused")
        return True


def test_ready_means_connected_joined_and_redis_answering():
    import asyncio

    from streams.live.observed import WorkerEngine
    from streams.settings import Settings

    settings = Settings(consumer_group="g1", kafka_bootstrap="k:9092", redis_url="redis://u:pw-0123456789@r:6379/0")
    worker = SimpleNamespace(settings=settings, pulse=Pulse(Telemetry(dict)), stopping=asyncio.Event(), redis=_Redis())
    engine = WorkerEngine(worker)  # type: ignore[arg-type]
    ready = lambda: asyncio.run(engine.readiness())  # noqa: E731
    assert ready() == "connecting to Kafka at k:9092"
    worker.pulse.connected = True
    assert ready() == "joining consumer group g1"
    worker.pulse.joined = True
    assert ready() is None
    worker.redis.down = True
    reason = ready()
    assert reason is not None and reason.startswith("Redis at redis://u:***@r:6379/0 does not answer")
    assert "pw-0123456789" not in reason
    worker.redis.down = False
    worker.pulse.joined = False  # a rebalance: partitions revoked, not yet assigned again
    assert ready() == "joining consumer group g1"
    worker.pulse.joined = True
    worker.stopping.set()
    assert ready() == "stopping"
