"""One customer's known journey run through the pure core: the state and stored history it leaves.

Alice: a page view, three purchases five days apart (new, then loyal, with the `efficient` trait),
quiet past the at-risk threshold (at risk by the clock, a win-back offer), and back with a fourth
purchase (loyal again; the second loyalty invite falls within its cooldown and is suppressed).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from schemas import TouchpointEvent
from streams.core import CustomerState, advance, apply_event
from streams.core.model import Model, load_model
from streams.live import outbox
from streams.local import sample

DAY0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def event(customer: str, n: int, kind: str, at: datetime, **extra) -> dict:
    """A touchpoint event as a sender writes it: id `<customer>-<n>`, on the web, an order of 50 EUR
    for a purchase."""
    message = {
        "event_id": f"{customer}-{n}",
        "customer_id": customer,
        "occurred_at": at.isoformat(),
        "stage": sample.STAGE[kind],
        "touchpoint": kind,
        "channel": "web",
        **extra,
    }
    if kind == "purchase":
        message["payload"] = {"kind": "order", "amount": 50.0, "currency": "EUR"}
    return message


def touchpoint(customer: str, n: int, kind: str, day: float) -> TouchpointEvent:
    return TouchpointEvent.model_validate(event(customer, n, kind, DAY0 + timedelta(days=day)))


def alice(model: Model | None = None) -> tuple[CustomerState, list[dict], Model, list]:
    """Alice's state, her history as the worker stores it (newest first), the model, and every outcome."""
    model = model or load_model()
    steps = [(1, "page_view", 0), (2, "purchase", 1), (3, "purchase", 6), (4, "purchase", 11)]
    state, outcomes = None, []
    for n, kind, day in steps:
        out = apply_event(state, touchpoint("alice", n, kind, day), model)
        state = out.state
        outcomes.append(out)
    quiet = advance(state, (DAY0 + timedelta(days=89)).timestamp(), model)
    outcomes.append(quiet)
    last = apply_event(quiet.state, touchpoint("alice", 5, "purchase", 90), model)
    outcomes.append(last)
    changes = [change for out in outcomes for change in out.changes]
    history = [json.loads(outbox.message("changes", "alice", change).value) for change in reversed(changes)]
    return last.state, history, model, outcomes
