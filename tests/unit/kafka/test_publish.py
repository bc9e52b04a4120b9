"""The batched publish refuses a message larger than the producer's limit before sending anything."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import MessageSizeTooLargeError

from streams.kafka.publish import FRAMING_BYTES, BatchPublisher
from streams.live.outbox import OutboundMessage
from streams.live.retry import PermanentError, retrying


class _NoBroker:
    """A producer that must never be reached: the size check comes first."""

    def __getattr__(self, name):
        raise AssertionError(f"the producer was used ({name})")


def test_a_message_over_the_limit_is_refused_before_anything_is_sent():
    """`send_batch` does not check `max_request_size` (only `send` does): the broker would be asked, and
    one that takes anything (Tansu) would store it, one that does not would answer an error after a wait."""
    publisher = BatchPublisher(_NoBroker(), max_request_size=64 * 1024)  # type: ignore[arg-type]
    big = OutboundMessage("journey.dead-letter", b"k", b"x" * (64 * 1024 - FRAMING_BYTES))
    with pytest.raises(MessageSizeTooLargeError, match=r"journey\.dead-letter"):
        asyncio.run(publisher.publish([big]))
    with pytest.raises(PermanentError, match="JOURNEY_MAX_PUBLISH_BYTES"):
        asyncio.run(retrying(lambda: publisher.publish([big]), "Kafka publish", 0.01))
