"""A dead letter never exceeds the producer's message limit: raw bytes cut to fit, with size and hash."""

from __future__ import annotations

import base64
import hashlib
import inspect
import json
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer

from schemas import DeadLetter
from streams.core.intake import ERROR_CHARS, FRAMING_BYTES, MESSAGE_LIMIT, RawMessage, dead_letter, decode
from streams.kafka import publish
from streams.settings import Settings

RECEIVED = datetime(2026, 3, 1, 12, tzinfo=UTC)


def letter_of(key: bytes | None, value: bytes | None, error: str = "bad", limit: int = MESSAGE_LIMIT) -> DeadLetter:
    return dead_letter(RawMessage("journey.touchpoints", 2, 99, key, value), error, RECEIVED, limit=limit)


def wire(letter: DeadLetter) -> bytes:
    return letter.__pydantic_serializer__.to_json(letter, by_alias=True)


def test_the_limit_is_the_producers_default_in_every_place():
    """One figure: aiokafka's default max_request_size, the setting's default, the dead letter's bound."""
    default = inspect.signature(AIOKafkaProducer).parameters["max_request_size"].default
    assert MESSAGE_LIMIT == default == Settings().max_publish_bytes == publish.DEFAULT_MAX_REQUEST_SIZE
    assert FRAMING_BYTES == publish.FRAMING_BYTES


def test_a_2_mb_value_gives_a_dead_letter_under_the_limit_with_its_size_and_hash():
    """Before: a 2 MB input made a 2.7 MB dead letter, which a broker with the usual 1 MB limit refuses."""
    value = bytes(range(256)) * (2 * 1024 * 1024 // 256)
    letter = letter_of(b"cust-1", value)
    size = len(wire(letter))
    assert size <= MESSAGE_LIMIT - FRAMING_BYTES
    assert size > MESSAGE_LIMIT - FRAMING_BYTES - 8, "the room is used, not wasted"
    assert letter.truncated
    assert letter.raw_value_size == len(value) and letter.raw_value_sha256 == hashlib.sha256(value).hexdigest()
    kept = base64.b64decode(letter.raw_value_b64 or "")
    assert 700_000 < len(kept) < len(value) and value.startswith(kept)
    assert base64.b64decode(letter.raw_key_b64 or "") == b"cust-1" and letter.raw_key_size == 6
    assert DeadLetter.model_validate_json(wire(letter)) == letter


def test_a_huge_key_and_error_are_cut_too():
    key, value = b"k" * 500_000, b"v" * 900_000
    letter = letter_of(key, value, error="payload." + "x" * 100_000 + ": Extra inputs are not permitted")
    assert len(wire(letter)) <= MESSAGE_LIMIT - FRAMING_BYTES
    assert letter.truncated and letter.raw_key_size == len(key) and letter.raw_value_size == len(value)
    assert letter.raw_key_sha256 == hashlib.sha256(key).hexdigest()
    assert len(letter.error) <= ERROR_CHARS and "100040 characters in all" in letter.error
    assert key.startswith(base64.b64decode(letter.raw_key_b64 or "")) and value.startswith(
        base64.b64decode(letter.raw_value_b64 or "")
    )


@pytest.mark.parametrize("limit", [64 * 1024, 100_000, MESSAGE_LIMIT, 4 * MESSAGE_LIMIT])
def test_any_limit_is_kept(limit):
    for value in (b"x" * 10, b"y" * (limit // 2), b"z" * (3 * limit)):
        letter = letter_of(b"cust-9", value, limit=limit)
        assert len(wire(letter)) <= limit - FRAMING_BYTES
        assert letter.truncated == (len(base64.b64decode(letter.raw_value_b64 or "")) < len(value))


def test_a_small_message_is_kept_whole_with_its_size_and_hash():
    value = json.dumps({"event_id": "e1"}).encode()
    letter = letter_of(b"cust-1", value)
    assert not letter.truncated
    assert base64.b64decode(letter.raw_value_b64 or "") == value
    assert letter.raw_value_sha256 == hashlib.sha256(value).hexdigest() and letter.raw_value_size == len(value)
    keyless = letter_of(None, None, error="empty message value")
    assert keyless.raw_key_b64 is None and keyless.raw_key_size is None and keyless.raw_key_sha256 is None
    assert keyless.raw_value_b64 is None and keyless.raw_value_size is None and not keyless.truncated


def test_an_oversize_input_is_refused_and_its_dead_letter_fits():
    value = b'{"event_id": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    msg = RawMessage("journey.touchpoints", 0, 5, b"cust-1", value)
    error = decode(msg, Settings().max_message_bytes)
    assert isinstance(error, str) and "exceeds" in error
    assert len(wire(dead_letter(msg, error))) <= MESSAGE_LIMIT - FRAMING_BYTES
