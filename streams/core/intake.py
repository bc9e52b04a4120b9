"""Turning raw input messages into touchpoint events, or into a reason to dead-letter them."""

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


#: Dead-letter reasons as fixed words, for counting (`reason_kind`): the reasons themselves carry sizes,
#: field names and the sender's key.
DEAD_LETTER_KINDS = (
    "empty_value",
    "too_large",
    "missing_key",
    "key_mismatch",
    "invalid_json",
    "invalid_event",
    "internal_error",
    "other",
)
INTERNAL_ERROR = "internal error applying the event"


def reason_kind(error: str) -> str:
    """Which of `DEAD_LETTER_KINDS` a dead-letter reason (of `decode`, or `INTERNAL_ERROR`) is."""
    if error.startswith("empty message value"):
        return "empty_value"
    if error.startswith("message of ") and "exceeds" in error:
        return "too_large"
    if error.startswith("empty message key"):
        return "missing_key"
    if error.startswith("message key "):
        return "key_mismatch"
    if error.startswith("message: Invalid JSON"):
        return "invalid_json"
    if error.startswith(INTERNAL_ERROR):
        return "internal_error"
    if ": " in error:  # `describe`: "<field>: <what is wrong>; ..."
        return "invalid_event"
    return "other"
