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
import hashlib
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


#: The largest message the worker's producer sends (its `max_request_size`, `JOURNEY_MAX_PUBLISH_BYTES`):
#: aiokafka's default, which is also the usual broker limit (`message.max.bytes`).
MESSAGE_LIMIT = 1_048_576
#: Room kept within that limit for the record's framing in its batch (batch header, lengths, timestamps).
FRAMING_BYTES = 512
#: Most bytes of the raw key a dead letter keeps; the raw value gets the rest of the room.
KEY_BYTES_KEPT = 4096
#: Longest error text a dead letter keeps (characters); a longer one is cut, saying how long it was.
ERROR_CHARS = 4096


def bounded_error(error: str, chars: int = ERROR_CHARS) -> str:
    """The error text, cut to `chars` characters (it may quote the sender's field names, of any length)."""
    if len(error) <= chars:
        return error
    note = f"… (cut: {len(error)} characters in all)"
    return error[: max(0, chars - len(note))] + note


def _b64(raw: bytes | None) -> str | None:
    return None if raw is None else base64.b64encode(raw).decode()


def _sha256(raw: bytes | None) -> str | None:
    return None if raw is None else hashlib.sha256(raw).hexdigest()


def dead_letter(
    message: InputMessage, error: str, received_at: datetime | None = None, limit: int = MESSAGE_LIMIT
) -> DeadLetter:
    """The dead-letter record of a message: raw bytes, the error and where it came from.

    It never serialises to more than `limit` bytes less `FRAMING_BYTES`, so the producer and the
    broker always take it: a raw key or value that would not fit is cut (`truncated`), and the
    sizes and SHA-256 of the whole key and value say what was received. A dead letter that could not
    be published would stop its partition for good.
    """
    key, value = message.key, message.value
    fields = {
        "raw_key_size": None if key is None else len(key),
        "raw_key_sha256": _sha256(key),
        "raw_value_size": None if value is None else len(value),
        "raw_value_sha256": _sha256(value),
        "error": bounded_error(error),
        "source_topic": message.topic,
        "source_partition": message.partition,
        "source_offset": message.offset,
        "received_at": received_at or datetime.now(UTC),
    }
    empty = DeadLetter(
        raw_key_b64=None if key is None else "", raw_value_b64=None if value is None else "", truncated=False, **fields
    )
    room = limit - FRAMING_BYTES - len(empty.__pydantic_serializer__.to_json(empty))
    key_kept = 0 if key is None else min(len(key), KEY_BYTES_KEPT, max(0, room // 4 * 3))
    room -= 4 * -(-key_kept // 3)  # base64 of key_kept bytes
    value_kept = 0 if value is None else min(len(value), max(0, room // 4 * 3))
    truncated = (key is not None and key_kept < len(key)) or (value is not None and value_kept < len(value))
    return DeadLetter(
        raw_key_b64=None if key is None else _b64(key[:key_kept]),
        raw_value_b64=None if value is None else _b64(value[:value_kept]),
        truncated=truncated,
        **fields,
    )
