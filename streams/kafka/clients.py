"""Every Kafka client the product builds, made here from the settings.

One place for how the product reaches its brokers, so the worker, topic admin, `replay
--to-kafka`, the demo and the benchmarks all connect alike: the same TLS and SASL settings
(streams/kafka/security.py), and the same account of why a client could not start.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from streams.kafka import security
from streams.settings import Settings


def connection(settings: Settings) -> dict[str, Any]:
    """The options every client of these settings connects with: where, and how (TLS, SASL)."""
    return {"bootstrap_servers": settings.kafka_bootstrap, **security.options(settings)}


class Producer(AIOKafkaProducer):
    """An aiokafka producer whose failed start says why (`security.started`)."""

    def __init__(self, settings: Settings, **options: Any) -> None:
        super().__init__(**connection(settings), **options)
        self.journey_settings = settings

    async def start(self) -> None:
        await security.started(self.journey_settings, super().start())


class Consumer(AIOKafkaConsumer):
    """An aiokafka consumer whose failed start says why (`security.started`)."""

    def __init__(self, settings: Settings, *topics: str, **options: Any) -> None:
        super().__init__(*topics, **connection(settings), **options)
        self.journey_settings = settings

    async def start(self) -> None:
        await security.started(self.journey_settings, super().start())


class Admin(AIOKafkaAdminClient):
    """An aiokafka admin client whose failed start says why (`security.started`)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(**connection(settings))
        self.journey_settings = settings

    async def start(self) -> None:
        await security.started(self.journey_settings, super().start())


def producer(settings: Settings, **options: Any) -> AIOKafkaProducer:
    return Producer(settings, **options)


def consumer(settings: Settings, *topics: str, **options: Any) -> AIOKafkaConsumer:
    return Consumer(settings, *topics, **options)


def admin(settings: Settings) -> AIOKafkaAdminClient:
    return Admin(settings)


def worker_producer(settings: Settings) -> AIOKafkaProducer:
    """The worker's producer: every output acknowledged by all in-sync replicas, batched generously, and no
    message larger than `JOURNEY_MAX_PUBLISH_BYTES` (dead letters are cut to fit it)."""
    return producer(
        settings, acks="all", linger_ms=5, max_batch_size=256 * 1024, max_request_size=settings.max_publish_bytes
    )


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
