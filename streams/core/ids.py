"""Deterministic ids: the same input always gives the same id, so re-emission is harmless."""

from __future__ import annotations

from base64 import urlsafe_b64encode
from hashlib import blake2b


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
