"""State transitions: fold an event into a customer's state, or let time pass, and say what changed.

Both entry points are pure: they copy the state they are given, read no clock and do
no I/O. `now` is always passed in, so a replay and a live run decide alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from schemas import Dimension, NurtureAction, Reason, Touchpoint, TouchpointEvent, TypeChange
from schemas import OrderPayload, ScorePayload, SupportPayload
from streams.core import ids, lifecycle
from streams.core.playbook import DEFAULT_PLAYBOOK, Playbook
from streams.core.state import CustomerState
from streams.settings import Thresholds

SUPPORT_KINDS = frozenset({Touchpoint.SUPPORT_TICKET, Touchpoint.COMPLAINT, Touchpoint.PRESALES_CHAT})


@dataclass(slots=True)
class Outcome:
    """The new state and what it emits. `duplicate` is set when the event was already applied."""

    state: CustomerState
    changes: list[TypeChange] = field(default_factory=list)
    actions: list[NurtureAction] = field(default_factory=list)
    suppressed: list[str] = field(default_factory=list)
    duplicate: bool = False


def _copy(state: CustomerState) -> CustomerState:
    return state.clone()


def _fold(state: CustomerState, event: TouchpointEvent, ts: float) -> None:
    """Add one event's facts to the state (in place, on a copy)."""
    state.first_seen = min(state.first_seen, ts)
    state.last_seen = max(state.last_seen, ts)
    stage = event.stage.value
    state.last_by_stage[stage] = max(state.last_by_stage.get(stage, ts), ts)
    kind = event.touchpoint.value
    state.counts[kind] = state.counts.get(kind, 0) + 1
    for attr in ("country", "language", "segment"):
        value = getattr(event, attr)
        if value is not None:
            setattr(state, attr, value)

    payload = event.payload
    if event.touchpoint is Touchpoint.PURCHASE and isinstance(payload, OrderPayload):
        state.purchases += 1
        state.total_spend += payload.amount
        if payload.coupon or payload.discount > 0:
            state.coupon_orders += 1
        state.first_purchase_at = ts if state.first_purchase_at is None else min(state.first_purchase_at, ts)
        state.last_purchase_at = ts if state.last_purchase_at is None else max(state.last_purchase_at, ts)
    if event.touchpoint in SUPPORT_KINDS:
        state.support_contacts += 1
    if isinstance(payload, SupportPayload | ScorePayload) and payload.sentiment is not None:
        state.support_sentiment_sum += payload.sentiment
        state.support_sentiment_n += 1
    if isinstance(payload, ScorePayload):
        for score in ("csat", "nps", "ces", "rating"):
            value = getattr(payload, score)
            if value is not None:
                state.scores[score] = value


def _change_lifecycle(
    state: CustomerState,
    to: str,
    reason: Reason,
    caused_by: str,
    at: float,
    playbook: Playbook,
    out: Outcome,
) -> None:
    """Record a lifecycle change and the playbook actions it triggers, honouring cooldowns."""
    change = TypeChange(
        change_id=ids.change_id(state.customer_id, Dimension.LIFECYCLE, state.lifecycle, to, caused_by),
        customer_id=state.customer_id,
        dimension=Dimension.LIFECYCLE,
        **{"from": state.lifecycle},
        to=to,
        reason=reason,
        caused_by=caused_by,
        at=datetime.fromtimestamp(at, UTC),
    )
    out.changes.append(change)
    state.lifecycle = to
    state.lifecycle_since = at
    for spec in playbook.get(to, ()):
        last = state.actions_sent.get(spec.action)
        if last is not None and at - last < spec.cooldown_s:
            state.actions_suppressed += 1
            out.suppressed.append(spec.action)
            continue
        state.actions_sent[spec.action] = at
        out.actions.append(
            NurtureAction(
                action_id=ids.action_id(change.change_id, spec.action),
                customer_id=state.customer_id,
                action=spec.action,
                channel=spec.channel,
                priority=spec.priority,
                params={**spec.params, "lifecycle": to, "rule": reason.rule},
                triggered_by=change.change_id,
                at=change.at,
            )
        )


def next_due(state: CustomerState, th: Thresholds) -> float | None:
    """When time alone would next change this customer (None: nothing is due)."""
    if state.lifecycle in lifecycle.WATCHED_FOR_INACTIVITY:
        return lifecycle.at_risk_due(state, th)
    return None


def _advance_into(state: CustomerState, now: float, th: Thresholds, playbook: Playbook, out: Outcome) -> None:
    """Apply every inactivity change that fell due at or before `now`, each at its own due time."""
    due = next_due(state, th)
    while due is not None and due <= now:
        to, reason = lifecycle.classify(state, due, th)
        if to == state.lifecycle:
            break
        _change_lifecycle(state, to, reason, f"inactivity@{lifecycle.iso(due)}", due, playbook, out)
        due = next_due(state, th)


def advance(
    state: CustomerState, now: float, th: Thresholds, playbook: Playbook = DEFAULT_PLAYBOOK
) -> Outcome:
    """Let the clock reach `now` with no event: the inactivity checks that fell due fire."""
    out = Outcome(state=_copy(state))
    _advance_into(out.state, now, th, playbook, out)
    return out


def apply_event(
    state: CustomerState | None,
    event: TouchpointEvent,
    th: Thresholds,
    playbook: Playbook = DEFAULT_PLAYBOOK,
) -> Outcome:
    """Fold one event into the customer's state and reclassify them.

    An event already applied (its id is among the customer's recent ones) changes
    nothing and emits nothing. Inactivity that fell due before the event fires first,
    at its due time, so the outcome does not depend on when a sweep happened to run.
    """
    fingerprint = ids.event_fingerprint(event.event_id)
    if state is not None and fingerprint in state.recent_events:
        return Outcome(state=state, duplicate=True)
    ts = event.occurred_ts
    if state is None:
        out = Outcome(state=CustomerState(customer_id=event.customer_id, first_seen=ts, last_seen=ts))
    else:
        out = Outcome(state=_copy(state))
        _advance_into(out.state, ts, th, playbook, out)
    current = out.state
    _fold(current, event, ts)
    current.recent_events.append(fingerprint)
    del current.recent_events[: -th.dedupe_window]

    # Judge at the latest instant known for this customer: a late event (older than a change the
    # clock already made) must not undo that change.
    now = max(current.last_seen, current.lifecycle_since or current.last_seen)
    if lifecycle.lifecycle_type(current, now, th) != current.lifecycle:
        to, reason = lifecycle.classify(current, now, th)
        _change_lifecycle(current, to, reason, event.event_id, ts, playbook, out)
    return out
