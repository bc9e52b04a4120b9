"""Creating the input and output topics (Tansu does not create them from a metadata request)."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams.settings import Settings


async def ensure_topics(settings: Settings) -> list[str]:
    """Create every topic the service uses that does not exist yet; return the ones created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [settings.topic_touchpoints, *settings.output_topics]
        missing = [name for name in wanted if name not in existing]
        if missing:
            try:
                await admin.create_topics([
                    NewTopic(name, num_partitions=settings.partitions, replication_factor=settings.replication_factor)
                    for name in missing
                ])
            except TopicAlreadyExistsError:
                pass
        return missing
    finally:
        await admin.close()
