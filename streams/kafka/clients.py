"""Every Kafka client the product builds, made here from the settings.

One place for how the product reaches its brokers, so the worker, topic admin, `replay
--to-kafka`, the demo and the benchmarks all connect alike.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from streams.settings import Settings


def connection(settings: Settings) -> dict[str, Any]:
    """The options every client of these settings connects with."""
    return {"bootstrap_servers": settings.kafka_bootstrap}


def producer(settings: Settings, **options: Any) -> AIOKafkaProducer:
    return AIOKafkaProducer(**connection(settings), **options)


def consumer(settings: Settings, *topics: str, **options: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(*topics, **connection(settings), **options)


def admin(settings: Settings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**connection(settings))


def worker_producer(settings: Settings) -> AIOKafkaProducer:
    """The worker's producer: every output acknowledged by all in-sync replicas, batched generously."""
    return producer(settings, acks="all", linger_ms=5, max_batch_size=256 * 1024)


def worker_consumer(settings: Settings) -> AIOKafkaConsumer:
    """The worker's group member: offsets committed by hand, after Redis holds what the batch applied.

    Every position is set by the worker (Redis's applied offset + 1, `streams/kafka/resume.py`); with
    no reset policy, an offset Kafka no longer holds raises instead of silently jumping elsewhere.
    """
    return consumer(
        settings,
        group_id=settings.consumer_group,
        enable_auto_commit=False,
        auto_offset_reset="none",
        session_timeout_ms=int(settings.session_timeout_s * 1000),
        heartbeat_interval_ms=int(settings.heartbeat_interval_s * 1000),
        max_poll_records=settings.batch_size,
        fetch_max_wait_ms=int(settings.batch_within_s * 1000),
    )
