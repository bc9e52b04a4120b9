"""Outbox entries: an output message stored in Redis with the state that produced it.

An entry is the JSON array `[topic, key, value]`; the worker publishes entries to Kafka
and trims them only once the broker has acknowledged them, so a crash in between
re-publishes the same messages (with the same ids) instead of losing them.
"""

from __future__ import annotations

import json
from typing import NamedTuple

from pydantic import BaseModel


class OutboundMessage(NamedTuple):
    topic: str
    key: str | None
    value: str


def entry(topic: str, key: str | None, message: BaseModel) -> str:
    return json.dumps([topic, key, message.model_dump_json(by_alias=True)])


def parse(raw: bytes | str) -> OutboundMessage:
    topic, key, value = json.loads(raw)
    return OutboundMessage(topic, key, value)
