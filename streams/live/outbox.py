"""Outbox entries: an output message stored in Redis with the state that produced it.

An entry is `topic TAB key TAB value`: topic names and customer ids hold no control
characters (the schemas refuse them) and compact JSON holds no raw tab, so the split is
exact, and it is cheaper than a JSON wrapper on the hot path. The worker publishes entries
to Kafka and trims them only once the broker has acknowledged them, so a crash in between
re-publishes the same messages (with the same ids) instead of losing them.

A tombstone (null value: a compacted topic drops the key) is stored with an empty value: no JSON
message is empty, so an empty value always reads back as None.
"""

from __future__ import annotations

from typing import NamedTuple

from pydantic import BaseModel


class OutboundMessage(NamedTuple):
    """As Kafka takes it: the key and value stay bytes."""

    topic: str
    key: bytes | None
    value: bytes | None  # None: a tombstone


def message(topic: str, key: str | None, model: BaseModel) -> OutboundMessage:
    """The message as Kafka takes it (the serializer is called directly: `model_dump_json` added half its cost again)."""
    value = model.__pydantic_serializer__.to_json(model, by_alias=True)
    return OutboundMessage(topic, key.encode() if key else None, value)


def entry(message: OutboundMessage) -> bytes:
    """The message's outbox entry."""
    return b"%s\t%s\t%s" % (message.topic.encode(), message.key or b"", message.value or b"")


def parse(raw: bytes) -> OutboundMessage:
    """The message of an outbox entry (one read back from Redis)."""
    topic, key, value = raw.split(b"\t", 2)
    return OutboundMessage(topic.decode(), key or None, value or None)


def tombstone(topic: str, key: str) -> OutboundMessage:
    """A null value under the customer's key: compacted topics, and consumers that honour it, drop the key."""
    return OutboundMessage(topic, key.encode(), None)
