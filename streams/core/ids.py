"""Deterministic ids: the same input always gives the same id, so re-emission is harmless."""

from __future__ import annotations

from base64 import urlsafe_b64encode
from hashlib import blake2b
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from schemas import TouchpointEvent


def _digest(*parts: str, size: int) -> str:
    return blake2b("\x1f".join(parts).encode(), digest_size=size).hexdigest()


def change_id(customer_id: str, dimension: str, from_: str | None, to: str | None, caused_by: str) -> str:
    return "chg_" + _digest(customer_id, dimension, from_ or "", to or "", caused_by, size=12)


def action_id(change_id_: str, action: str) -> str:
    return "act_" + _digest(change_id_, action, size=12)


#: Characters of one event fingerprint: 42 bits of digest in URL-safe base64. Earlier versions kept 8 (48 bits),
#: of which these are the start (`CustomerState.from_json` shortens what they stored).
FINGERPRINT_CHARS = 7


def event_fingerprint(event_id: str) -> str:
    """A short digest of an event id, kept per customer to recognise re-sent events.

    42 bits: with the default 16 kept per customer (JOURNEY_DEDUPE_WINDOW), a new event's fingerprint
    equals one of them with odds 16 / 2^42, so about once in 2.7 × 10^11 events a new event is taken
    for a re-sent one (then dropped, or dead-lettered as a conflict if its content fingerprint differs):
    once in about ten months at 10,000 events a second. Each character fewer would make that 64 times
    as often; each customer's fingerprints are most of what a state spends on deduplication.
    """
    return urlsafe_b64encode(blake2b(event_id.encode(), digest_size=6).digest()).decode()[:FINGERPRINT_CHARS]


#: Characters of one content fingerprint: 24 bits of digest in URL-safe base64 (earlier versions kept 6, 36 bits,
#: of which these are the start).
CONTENT_CHARS = 4


def content_fingerprint(event: TouchpointEvent) -> str:
    """A short digest of everything an event says, kept beside its id's fingerprint to tell an exact
    re-send (a quiet duplicate) from an id reused for another event (a conflict, dead-lettered).

    Made from the event as parsed, so a re-send whose JSON differs only in spacing, key order, how a
    number is written or which offset its time is given in is the same content. Every field but the
    id and the customer (the same, for the state it is compared in) takes part; spelled out rather
    than serialised, which cost about as much again (tests/unit/core/test_event_conflicts.py fails
    when a field of the schema is missing here). 24 bits: an id reused for other content (a producer's
    bug, itself rare) passes for a re-send, and is dropped rather than dead-lettered, once in 1.7 × 10^7
    such reuses; it only has to catch such bugs, not every instance of them.
    """
    payload = event.payload
    text = "\x1f".join(
        (
            repr(event.occurred_ts),
            event.stage,
            event.touchpoint,
            event.channel,
            event.country or "",
            event.language or "",
            event.segment or "",
            "" if payload is None else repr(tuple(payload.__dict__.values())),
        )
    )
    if event.timezone is not None:  # only when given: events without one keep the fingerprints they had
        text += "\x1ftz=" + event.timezone
    return urlsafe_b64encode(blake2b(text.encode(), digest_size=6).digest()).decode()[:CONTENT_CHARS]
