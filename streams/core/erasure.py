"""Forgetting a customer: what an erasure request leaves behind (the audit record), and nothing else.

The live processor and the offline replay both call `is_erasure` at the same point of a customer's
events and drop everything they hold of the customer there, so events after it start a new profile
in both, and live and offline still agree.
"""

from __future__ import annotations

from schemas import Erasure, ErasurePayload, Touchpoint, TouchpointEvent


def is_erasure(event: TouchpointEvent) -> bool:
    return event.touchpoint is Touchpoint.ERASURE_REQUEST


def audit(event: TouchpointEvent) -> Erasure:
    """The audit record of an erasure request: the customer id, when, who asked; no other personal data."""
    payload = event.payload
    assert isinstance(payload, ErasurePayload)  # the schema requires it on this kind
    return Erasure(
        erasure_id=event.event_id,
        customer_id=event.customer_id,
        requested_by=payload.requested_by,
        requested_at=event.occurred_at,
    )
