"""Turning raw input messages into touchpoint events, or into a reason to dead-letter them.

Nothing a sender puts in a message makes `decode` raise: bytes that are not UTF-8 or not JSON,
nesting too deep for the parser, values of the wrong type or out of range all come back as a
reason. JSON has no `Infinity` or `NaN`, but the parser (like Python's `json` module) reads those
literals as numbers; rather than refuse them in the parser with a message about JSON, every
number field refuses a non-finite number with a message naming the field (as it does `1e309` and a
400-digit integer, which a float cannot hold either), so the sender learns which field is wrong.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from pydantic import ValidationError

from schemas import DeadLetter, TouchpointEvent


class InputMessage(Protocol):
    """What the processor reads of an input message: aiokafka's `ConsumerRecord` as it comes (copying
    each record into a `RawMessage` costs time on the hot path), or a `RawMessage`."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(slots=True)
class RawMessage:
    """One input message as it came off the topic, before any parsing (tests, tools)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def describe(error: ValidationError) -> str:
    """A one-line, producer-readable summary of what failed validation."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(p) for p in item["loc"]) or "message"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def decode(message: InputMessage, max_bytes: int) -> TouchpointEvent | str:
    """The validated event, or a string saying why the message cannot be processed."""
    value = message.value
    if value is None or not value:
        return "empty message value"
    if len(value) > max_bytes:
        return f"message of {len(value)} bytes exceeds the {max_bytes}-byte limit"
    if not message.key:
        return "empty message key: touchpoints must be keyed by customer id"
    try:
        event = TouchpointEvent.model_validate_json(value)
    except ValidationError as exc:
        return describe(exc)
    if message.key != event.customer_id.encode():
        return (
            f"message key {message.key[:64]!r} does not match customer_id {event.customer_id[:64]!r}: "
            "touchpoints must be keyed by customer id"
        )
    return event


def dead_letter(message: InputMessage, error: str, received_at: datetime | None = None) -> DeadLetter:
    """The dead-letter record of a message: raw bytes, the error and where it came from."""
    return DeadLetter(
        raw_key_b64=None if message.key is None else base64.b64encode(message.key).decode(),
        raw_value_b64=None if message.value is None else base64.b64encode(message.value).decode(),
        error=error,
        source_topic=message.topic,
        source_partition=message.partition,
        source_offset=message.offset,
        received_at=received_at or datetime.now(UTC),
    )
