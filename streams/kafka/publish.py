"""Publishing many messages at once: one record batch per topic partition, then one wait for every ack.

Keyed messages go to the partition every Kafka client picks for their key (murmur2, as
aiokafka's `DefaultPartitioner`), so outputs keyed by customer land where a consumer
of any client expects them.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.partitioner import DefaultPartitioner, murmur2

#: Customer keys whose murmur2 hash is remembered (aiokafka's murmur2 is pure Python).
KEY_HASHES_KEPT = 200_000
#: aiokafka's default `max_request_size`: the largest message a producer sends (`JOURNEY_MAX_PUBLISH_BYTES`).
DEFAULT_MAX_REQUEST_SIZE = 1_048_576
#: Room within that limit for a record's framing in its batch (as `streams.core.intake.FRAMING_BYTES`).
FRAMING_BYTES = 512

_partitioner = DefaultPartitioner()


def partition_for(key: bytes, partitions: int) -> int:
    """The partition every Kafka client's default partitioner picks for this key among `partitions`."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class Message(Protocol):
    """What is published: a topic, a key (None: any partition) and a value, all as Kafka takes them."""

    @property
    def topic(self) -> str: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...  # None: a tombstone


class BatchPublisher:
    """Sends a list of messages as record batches and returns once the broker acknowledged all of them."""

    def __init__(self, producer: AIOKafkaProducer, max_request_size: int = DEFAULT_MAX_REQUEST_SIZE) -> None:
        self.producer = producer
        self.max_request_size = max_request_size  # the producer's own: `send_batch` does not check it
        self._key_hashes: dict[bytes, int] = {}

    async def publish(self, messages: Sequence[Message]) -> None:
        """Raises `MessageSizeTooLargeError` before sending anything when one message exceeds the limit."""
        by_partition: dict[tuple[str, int], list[tuple[bytes | None, bytes | None]]] = defaultdict(list)
        partitions: dict[str, list[int]] = {}
        room = self.max_request_size - FRAMING_BYTES
        for m in messages:
            if len(m.value or b"") + len(m.key or b"") > room:
                raise MessageSizeTooLargeError(
                    f"a message for {m.topic} of {len(m.value or b'') + len(m.key or b'')} bytes does not fit the "
                    f"producer's {self.max_request_size}-byte limit"
                )
            if m.topic not in partitions:
                partitions[m.topic] = sorted(await self.producer.partitions_for(m.topic))
            by_partition[(m.topic, self.partition_of(m.key, partitions[m.topic]))].append((m.key, m.value))
        pending = []
        for (topic, partition), records in by_partition.items():
            batch = self.producer.create_batch()
            for key, value in records:
                if batch.append(key=key, value=value, timestamp=None) is None:  # full: send it, start another
                    pending.append(await self.producer.send_batch(batch, topic, partition=partition))
                    batch = self.producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            pending.append(await self.producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*pending)

    def partition_of(self, key: bytes | None, all_partitions: list[int]) -> int:
        """The partition every Kafka client picks for this key (murmur2, as `DefaultPartitioner`)."""
        if key is None:
            return _partitioner(None, all_partitions, None)
        hashed = self._key_hashes.get(key)
        if hashed is None:
            if len(self._key_hashes) >= KEY_HASHES_KEPT:
                self._key_hashes.clear()
            hashed = self._key_hashes[key] = murmur2(key) & 0x7FFFFFFF  # as `partition_for`, remembered
        return all_partitions[hashed % len(all_partitions)]
