"""Creating the input and output topics (Tansu does not create them from a metadata request)."""

from __future__ import annotations

import contextlib

from aiokafka.admin import NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams.kafka import clients
from streams.settings import Settings


async def ensure_topics(settings: Settings) -> list[str]:
    """Create every topic the service uses that does not exist yet; return the ones created."""
    admin = clients.admin(settings)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [settings.topic_touchpoints, *settings.output_topics]
        missing = [name for name in wanted if name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(
                            name, num_partitions=settings.partitions, replication_factor=settings.replication_factor
                        )
                        for name in missing
                    ]
                )
        return missing
    finally:
        await admin.close()


async def input_partitions(settings: Settings) -> list[int]:
    """The partitions of the input topic as the broker has them; `settings.partitions` if it has no such topic."""
    admin = clients.admin(settings)
    await admin.start()
    try:
        # Listed first: a metadata request for a missing topic makes Tansu create it.
        if settings.topic_touchpoints in set(await admin.list_topics()):
            for topic in await admin.describe_topics([settings.topic_touchpoints]):
                if (
                    topic.get("topic") == settings.topic_touchpoints
                    and topic.get("error_code") == 0
                    and topic.get("partitions")
                ):
                    return sorted(p["partition"] for p in topic["partitions"])
    finally:
        await admin.close()
    return list(range(settings.partitions))
