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


#: Characters of one event fingerprint: 6 bytes of digest in URL-safe base64 (no padding).
FINGERPRINT_CHARS = 8


def event_fingerprint(event_id: str) -> str:
    """A short digest of an event id, kept per customer to recognise re-sent events.

    48 bits: with 32 kept per customer, a new event is mistaken for a re-sent one about
    once in 10^13 events.
    """
    return urlsafe_b64encode(blake2b(event_id.encode(), digest_size=6).digest()).decode()


#: Characters of one content fingerprint: 36 bits of digest in URL-safe base64.
CONTENT_CHARS = 6


def content_fingerprint(event: TouchpointEvent) -> str:
    """A short digest of everything an event says, kept beside its id's fingerprint to tell an exact
    re-send (a quiet duplicate) from an id reused for another event (a conflict, dead-lettered).

    Made from the event as parsed, so a re-send whose JSON differs only in spacing, key order, how a
    number is written or which offset its time is given in is the same content. Every field but the
    id and the customer (the same, for the state it is compared in) takes part; spelled out rather
    than serialised, which cost about as much again (tests/unit/core/test_event_conflicts.py fails
    when a field of the schema is missing here). 36 bits: an id reused for other content passes for
    a re-send about once in 7 × 10^10.
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
