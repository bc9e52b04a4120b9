"""Outbox entries: an output message stored in Redis with the state that produced it.

An entry is `topic TAB key TAB value`: topic names and customer ids hold no control
characters (the schemas refuse them) and compact JSON holds no raw tab, so the split is
exact, and it is cheaper than a JSON wrapper on the hot path. The worker publishes entries
to Kafka and trims them only once the broker has acknowledged them, so a crash in between
re-publishes the same messages (with the same ids) instead of losing them.
"""

from __future__ import annotations

from typing import NamedTuple

from pydantic import BaseModel


class OutboundMessage(NamedTuple):
    topic: str
    key: str | None
    value: str


def entry(topic: str, key: str | None, message: BaseModel) -> str:
    return f"{topic}\t{key or ''}\t{message.model_dump_json(by_alias=True)}"


def parse(raw: bytes | str) -> OutboundMessage:
    text = raw.decode() if isinstance(raw, bytes) else raw
    topic, key, value = text.split("\t", 2)
    return OutboundMessage(topic, key or None, value)
