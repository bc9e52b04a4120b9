"""Intake: every kind of bad input becomes a readable dead-letter reason; good input becomes an event."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from schemas import DeadLetter, TouchpointEvent
from streams.core.intake import RawMessage, dead_letter, decode
from streams.local.sample import SAMPLE_FILE, bad_messages
from streams.settings import Settings

MAX_BYTES = Settings.model_fields["max_message_bytes"].default
TOPIC = "journey.touchpoints"

#: The word each of sample.bad_messages() must mention, in order.
EXPECTED_WORDS = ["JSON", "channel", "touchpoint", "contradicts", "occurred_at", "timezone", "exceeds", "key"]

GOOD = {
    "event_id": "ok-1",
    "customer_id": "cust-ok",
    "occurred_at": "2026-03-01T10:00:00Z",
    "stage": "purchase",
    "touchpoint": "purchase",
    "channel": "store",
    "payload": {"kind": "order", "amount": 12.5, "currency": "EUR", "coupon": "SAVE10"},
}


def message(key: bytes | None, value: bytes | None, offset: int = 7, partition: int = 1) -> RawMessage:
    return RawMessage(topic=TOPIC, partition=partition, offset=offset, key=key, value=value)


def test_bad_sample_has_one_message_per_expected_reason():
    assert len(bad_messages()) == len(EXPECTED_WORDS)


@pytest.mark.parametrize("index,word", list(enumerate(EXPECTED_WORDS)), ids=EXPECTED_WORDS)
def test_each_bad_message_is_refused_with_a_meaningful_reason(index, word):
    """decode returns a reason (not an event) that names what is wrong."""
    key, value = bad_messages()[index]
    result = decode(message(key, value), MAX_BYTES)
    assert isinstance(result, str), f"bad message {index} was accepted: {result!r}"
    assert word in result, result


def test_oversize_message_is_refused_before_parsing():
    """The size limit is checked on the raw bytes, and the reason gives both sizes."""
    value = json.dumps({**GOOD, "segment": "x" * 60}).encode()
    result = decode(message(b"cust-ok", value), len(value) - 1)
    assert isinstance(result, str) and "exceeds" in result
    assert str(len(value)) in result and str(len(value) - 1) in result
    assert isinstance(decode(message(b"cust-ok", value), len(value)), TouchpointEvent)


def test_key_that_differs_from_customer_id_is_refused():
    """Touchpoints must be keyed by customer id, or one customer's events could land on two partitions."""
    result = decode(message(b"cust-other", json.dumps(GOOD).encode()), MAX_BYTES)
    assert isinstance(result, str)
    assert "key" in result and "customer_id" in result and "cust-other" in result


@pytest.mark.parametrize("key", [None, b""])
def test_missing_or_empty_key_is_refused(key):
    result = decode(message(key, json.dumps(GOOD).encode()), MAX_BYTES)
    assert isinstance(result, str) and "key" in result


@pytest.mark.parametrize("value", [None, b""])
def test_missing_or_empty_value_is_refused(value):
    result = decode(message(b"cust-ok", value), MAX_BYTES)
    assert isinstance(result, str) and "empty" in result


def test_json_that_is_not_an_object_is_refused():
    for value in (b"[]", b"42", b'"text"', b"null"):
        assert isinstance(decode(message(b"cust-ok", value), MAX_BYTES), str), value


def test_good_message_becomes_an_event():
    event = decode(message(b"cust-ok", json.dumps(GOOD).encode()), MAX_BYTES)
    assert isinstance(event, TouchpointEvent)
    assert event.event_id == "ok-1" and event.customer_id == "cust-ok"
    assert event.occurred_at == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert event.payload.amount == 12.5 and event.payload.coupon == "SAVE10"


def test_every_bundled_sample_event_decodes():
    """The demo's sample contains only valid events, each keyed by its customer."""
    lines = SAMPLE_FILE.read_bytes().splitlines()
    assert lines
    for line in lines:
        key = json.loads(line)["customer_id"].encode()
        assert isinstance(decode(message(key, line), MAX_BYTES), TouchpointEvent), line[:200]


def test_dead_letter_keeps_raw_bytes_and_origin():
    """The dead letter carries the exact raw key and value (base64), the error and topic / partition / offset."""
    raw_value = b"\xff\x00{not json at all"
    msg = message(b"cust-\xe9", raw_value, offset=123456, partition=5)
    received = datetime(2026, 3, 1, 12, tzinfo=UTC)
    letter = dead_letter(msg, "message: Invalid JSON", received)
    assert isinstance(letter, DeadLetter)
    assert base64.b64decode(letter.raw_value_b64) == raw_value
    assert base64.b64decode(letter.raw_key_b64) == b"cust-\xe9"
    assert letter.error == "message: Invalid JSON"
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (TOPIC, 5, 123456)
    assert letter.received_at == received
    assert DeadLetter.model_validate_json(letter.model_dump_json()) == letter


def test_dead_letter_of_a_keyless_message_and_default_time():
    """No key gives a null raw key; without a receive time the current, timezone-aware time is used."""
    before = datetime.now(UTC)
    letter = dead_letter(message(None, b"x"), "empty message key")
    assert letter.raw_key_b64 is None
    assert base64.b64decode(letter.raw_value_b64) == b"x"
    assert letter.received_at.tzinfo is not None
    assert before <= letter.received_at <= datetime.now(UTC)


def test_each_bad_sample_message_makes_a_valid_dead_letter():
    """The whole path decode -> dead_letter works for every bad sample message, raw bytes preserved."""
    for offset, (key, value) in enumerate(bad_messages()):
        msg = message(key, value, offset=offset)
        letter = dead_letter(msg, decode(msg, MAX_BYTES))
        assert base64.b64decode(letter.raw_value_b64) == value
        assert letter.raw_key_b64 == (None if key is None else base64.b64encode(key).decode())
        assert letter.source_offset == offset and letter.error
