"""State transitions: fold an event into a customer's state, or let time pass, and say what changed.

Both entry points are pure by default: they copy the state they are given, read no clock
and do no I/O. `now` is always passed in, so a replay and a live run decide alike. What
the customer *is* comes from the rules file (`streams/core/rules`), what they *get* from the
playbook (`streams/core/playbook`); both arrive in a `Model` (`streams/core/model.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from schemas import (
    ConsentPayload,
    Dimension,
    Erasure,
    NurtureAction,
    OrderPayload,
    Reason,
    ScorePayload,
    Stage,
    SupportPayload,
    Touchpoint,
    TouchpointEvent,
    TypeChange,
)
from streams.core import ids
from streams.core.erasure import audit as erasure_audit
from streams.core.instants import LATEST_INSTANT, instant, iso
from streams.core.rules.signals import TIME
from streams.core.state import CustomerState
from streams.core.trusted import trusted

if TYPE_CHECKING:
    from streams.core.model import Model


class RulesLoop(RuntimeError):
    """Time alone kept changing a customer's types without end: the rules contradict each other."""


#: Traits can keep a customer due many times over a long quiet spell; more than this in one
#: step means a rule loops, and the step stops rather than hang the worker.
MAX_STEPS = 1000
SUPPORT_KINDS = frozenset({"support_ticket", "complaint", "presales_chat"})
VIEW_KINDS = frozenset({"product_view", "catalog_view"})
CART_KINDS = frozenset({"add_to_cart", "remove_from_cart"})
CONSENT_KINDS = frozenset({"consent_granted", "consent_revoked", "unsubscribe"})
SUPPORT_LOG_KEPT = 8
CHANNELS_KEPT = 8
_STAGE_VALUE = {stage: stage.value for stage in Stage}
_KIND_VALUE = {kind: kind.value for kind in Touchpoint}
_SCORES = ("csat", "nps", "ces", "rating")
_NEUTRAL = {"csat": (3,), "nps": (7, 8), "ces": (4,), "rating": (3,)}
_type_change, _reason = trusted(TypeChange), trusted(Reason)
TIME_MARKS = (TIME,)


@dataclass(slots=True)
class Outcome:
    """The new state and what it emits. `duplicate` is set when the event was already applied.

    `refused` is set when the core will not apply the event: the reason to dead-letter it with
    (an id reused for other content, a currency without a rate, an amount above the limit). The
    state is then the one given, untouched (for a customer's first event, a state of nothing yet,
    which callers drop), and nothing is emitted. `conflict` tells the first kind apart, for its
    own counter.
    """

    state: CustomerState
    changes: list[TypeChange] = field(default_factory=list)
    actions: list[NurtureAction] = field(default_factory=list)
    suppressed: list = field(default_factory=list)  # streams.core.playbook.playbook.Suppressed
    deferred: list = field(default_factory=list)  # streams.core.playbook.playbook.Deferred: waiting for quiet hours
    held_out: list[NurtureAction] = field(default_factory=list)  # HeldOutAction: for the holdouts topic
    duplicate: bool = False
    refused: str | None = None
    conflict: bool = False
    #: Set for an erasure request of a customer something is held of: the audit record. The state is then
    #: one of nothing (callers drop it, and everything else they hold of the customer); nothing else is emitted.
    erased: Erasure | None = None


def _later(current: float | None, ts: float) -> float:
    return ts if current is None or ts > current else current


def _fold(state: CustomerState, event: TouchpointEvent, ts: float, amount: float | None = None) -> tuple[str, ...]:
    """Add one event's facts to the state (in place, on a copy). Spelled out: it runs per event.

    `amount`: an order's amount in the state's currency (`Money.amount`); None: the payload's own.

    Returns what the event touched (its kind and the "@…" marks of `Signal.on`), so that only
    the rules it can affect are judged again.
    """
    if ts < state.first_seen:
        state.first_seen = ts
    if ts > state.last_seen:
        state.last_seen = ts
    stage = _STAGE_VALUE[event.stage]
    last = state.last_by_stage.get(stage)
    if last is None or ts > last:
        state.last_by_stage[stage] = ts
    kind = _KIND_VALUE[event.touchpoint]
    marks = [kind]
    counts = state.counts
    counts[kind] = counts.get(kind, 0) + 1
    if event.channel not in state.channels and len(state.channels) < CHANNELS_KEPT:
        state.channels.append(event.channel)
        marks.append("@channel")
    if event.country is not None or event.language is not None:
        marks.append("@locale")
        if event.country is not None:
            state.country = event.country
        if event.language is not None:
            state.language = event.language
    if event.segment is not None:
        state.segment = event.segment
    if event.timezone is not None:  # read by no rule: only the quiet hours' local time
        state.timezone = event.timezone
    if state.first_purchase_at is None or ts < state.first_purchase_at:  # before the first purchase
        marks.append("@pre_buy")
        if kind != "purchase":
            state.pre_buy_events += 1
        if kind == "review_read":
            state.pre_buy_reviews += 1
        elif kind in CART_KINDS:
            state.pre_buy_cart_churn += 1
    if kind in VIEW_KINDS and (state.first_view_at is None or ts < state.first_view_at):
        state.first_view_at = ts
    elif kind == "complaint":
        state.last_complaint_at = _later(state.last_complaint_at, ts)
    elif kind == "change_request":
        state.last_change_request_at = _later(state.last_change_request_at, ts)

    payload = event.payload
    if kind in SUPPORT_KINDS:
        state.support_contacts += 1
        sentiment = getattr(payload, "sentiment", None)
        wait = getattr(payload, "wait_seconds", None)
        log = state.support_log
        log.append([ts, sentiment or 0.0, wait or 0.0])
        if len(log) > 1 and log[-2][0] > ts:
            log.sort(key=lambda entry: entry[0])
        del log[:-SUPPORT_LOG_KEPT]
        topic = getattr(payload, "topic", None)
        if topic and "how" in topic.lower():
            state.howto_contacts += 1
    if kind in CONSENT_KINDS:  # read by no rule: only the playbook's consent policy
        _consent(state, kind, payload, ts)
    if payload is None:
        return tuple(marks)
    if kind == "purchase" and isinstance(payload, OrderPayload):
        state.purchases += 1
        state.total_spend += payload.amount if amount is None else amount
        if payload.coupon or payload.discount > 0:
            state.coupon_orders += 1
        state.first_purchase_at = ts if state.first_purchase_at is None else min(state.first_purchase_at, ts)
        state.last_purchase_at = _later(state.last_purchase_at, ts)
    if isinstance(payload, SupportPayload | ScorePayload) and payload.sentiment is not None:
        state.support_sentiment_sum += payload.sentiment
        state.support_sentiment_n += 1
    if isinstance(payload, ScorePayload):
        given = {score: getattr(payload, score) for score in _SCORES if getattr(payload, score) is not None}
        state.scores.update(given)
        if kind == "survey_response" and given:
            state.surveys += 1
            if all(value in _NEUTRAL[score] for score, value in given.items()):
                state.neutral_surveys += 1
        rating = given.get("rating")
        if kind == "review_written" and rating is not None:
            if rating <= 2:
                state.negative_reviews += 1
                state.last_negative_review_at = _later(state.last_negative_review_at, ts)
            elif rating >= 4:
                state.last_positive_review_at = _later(state.last_positive_review_at, ts)
    return tuple(marks)


def _consent(state: CustomerState, kind: str, payload: object, ts: float) -> None:
    """Record a consent given or withdrawn; an unsubscribe without a payload withdraws e-mail marketing.

    The latest word per channel stands, by event time: a late event older than what is recorded changes nothing,
    so the order events arrive in does not matter.
    """
    channel, source = "email", None
    if isinstance(payload, ConsentPayload):
        channel, source = payload.channel.value, payload.source
    recorded = state.consent.get(channel)
    if recorded is None or ts >= recorded[1]:
        state.consent[channel] = (kind == "consent_granted", ts, source)


def _change(
    state: CustomerState,
    dimension: Dimension,
    from_: str | None,
    to: str | None,
    reason: Reason,
    caused_by: str,
    at: float,
) -> TypeChange:
    # Not validated again: every value here is made by the core, already of its type (`trusted`).
    return _type_change(
        change_id=ids.change_id(state.customer_id, dimension, from_, to, caused_by),
        customer_id=state.customer_id,
        dimension=dimension,
        from_=from_,
        to=to,
        reason=reason,
        caused_by=caused_by,
        at=instant(at),
    )


def _judge(
    state: CustomerState,
    now: float,
    caused_by: str,
    at: float,
    model: Model,
    out: Outcome,
    marks: tuple[str, ...] | None = None,
) -> None:
    """Classify the customer at `now`; record every change (stamped `at`) and the actions it triggers.

    `marks`: what the causing event touched (`TIME_MARKS` for time; None for a new customer): only the rules
    it can affect are judged again.
    """
    rules = model.rules
    judge = rules.judge_for(marks, state.lifecycle is None)
    if judge is None:  # nothing this event touches decides anything
        if state.checked_at is None or now > state.checked_at:
            state.checked_at = now
        return
    rule, added, dropped = judge(state, now, state.traits)
    if state.traits and not rules.trait_names.issuperset(state.traits):
        dropped += rules.undefined_traits(state.traits)
    if not (added or dropped or (rule is not None and rule.type != state.lifecycle)):
        if state.checked_at is None or now > state.checked_at:
            state.checked_at = now
        return  # nothing changed, so no evidence to gather
    values = rules.values(state, now)
    entered: list[TypeChange] = []
    if rule is not None and rule.type != state.lifecycle:
        reason = _reason(rule=f"lifecycle.{rule.type}", evidence=rules.evidence(rule, values))
        change = _change(state, Dimension.LIFECYCLE, state.lifecycle, rule.type, reason, caused_by, at)
        if state.lifecycle == "lapsed":
            state.final_win_back_at = None  # back from lapsed: marketing may reach them again
        state.lifecycle, state.lifecycle_since = rule.type, at
        out.changes.append(change)
        entered.append(change)
    for trait in added:
        reason = _reason(rule=f"trait.{trait.type}", evidence=rules.evidence(trait, values))
        change = _change(state, Dimension.TRAIT, None, trait.type, reason, caused_by, at)
        state.traits[trait.type] = at
        out.changes.append(change)
        entered.append(change)
    for trait in dropped:
        evidence = {"since": iso(state.traits[trait.type]), **rules.evidence(trait, values)}
        reason = _reason(rule=f"trait.{trait.type}.cleared", evidence=evidence)
        out.changes.append(_change(state, Dimension.TRAIT, trait.type, None, reason, caused_by, at))
        del state.traits[trait.type]
    for change in entered:
        model.playbook.decide(state, change, at, out.actions, out.suppressed, out.deferred, out.held_out)
    state.checked_at = now if state.checked_at is None or now > state.checked_at else state.checked_at


def next_due(state: CustomerState) -> float | None:
    """When time alone could next change this customer or release an action of theirs (None: only an event can).

    The rules' due time is computed by the core each time it judges the customer and kept in the state
    (`due_at`); an action waiting for the quiet hours to end is due at its release (`deferred`).
    """
    due = state.due_at
    if state.deferred:
        release = state.deferred[0][0]
        return release if due is None or release < due else due
    return due


def _schedule(state: CustomerState, model: Model) -> None:
    after = state.checked_at if state.checked_at is not None else state.last_seen
    due = model.rules.next_due(state, after)
    # A due time past what a datetime can hold could never be stamped on a change: time alone never
    # changes this customer (a rules file with thresholds of millennia, an event near year 9999).
    state.due_at = None if due is None or not due <= LATEST_INSTANT else due


def _advance_into(state: CustomerState, now: float, model: Model, out: Outcome) -> None:
    """Apply every change that time made by `now`, each judged and stamped at its own due time, and release
    every waiting action due by then at its release time (after a change due at the same instant)."""
    steps = 0
    while steps < MAX_STEPS:
        due = state.due_at
        if state.deferred:
            release = state.deferred[0][0]
            if release <= now and (due is None or release < due):
                model.playbook.release_next(state, out.actions, out.suppressed, out.held_out)
                continue
        if due is None or due > now:
            return
        steps += 1
        # Only the rules that read an age or a window can change with time alone (`TIME_MARKS`).
        _judge(state, due, f"inactivity@{iso(due)}", due, model, out, TIME_MARKS)
        _schedule(state, model)
    raise RulesLoop(
        f"customer {state.customer_id}: time changed their types {MAX_STEPS} times in one step; "
        "the rules contradict each other"
    )


def advance(state: CustomerState, now: float, model: Model, *, in_place: bool = False) -> Outcome:
    """Let the clock reach `now` with no event: the checks that fell due fire.

    `in_place=True` changes `state` itself instead of a copy: for a caller that owns the state
    and keeps only the outcome's (the offline replay), where the copy was the largest cost.
    """
    out = Outcome(state=state if in_place else state.clone())
    _advance_into(out.state, now, model, out)
    return out


def _new_state(event: TouchpointEvent) -> CustomerState:
    """The state of a customer before their first event (what a refused first event leaves)."""
    ts = round(event.occurred_ts, 3)
    return CustomerState(customer_id=event.customer_id, first_seen=ts, last_seen=ts)


def _conflict(event: TouchpointEvent, remembered: str, content: str) -> str:
    return (
        f"conflict: event_id {event.event_id[:64]!r} was already applied for customer {event.customer_id[:64]!r} "
        f"with other content (content fingerprint {remembered!r} remembered, {content!r} now): "
        "give every event its own id"
    )


def apply_event(
    state: CustomerState | None, event: TouchpointEvent, model: Model, *, in_place: bool = False
) -> Outcome:
    """Fold one event into the customer's state and reclassify them.

    An event already applied (its id is among the customer's recent ones, with the same content)
    changes nothing and emits nothing; the same id with other content, an order in a currency
    without a rate, or above the largest order amount, is refused (`Outcome.refused`), and also
    changes nothing. Both are decided before the state is touched, so a refusal leaves even an
    `in_place` state as it was. What time made due before the event fires first, at its due time, so the
    outcome does not depend on when a sweep happened to run. A late event (older than what
    the clock already judged) is judged at that later instant, so it cannot undo the clock's
    change. `in_place=True`: as in `advance`, the given state is changed instead of a copy.
    """
    if event.touchpoint is Touchpoint.ERASURE_REQUEST:
        # Never folded: the customer is forgotten. Nothing held (a re-sent request after the erasure, or
        # an id never seen): nothing to delete, and nothing emitted again.
        if state is None:
            return Outcome(state=_new_state(event), duplicate=True)
        return Outcome(state=_new_state(event), erased=erasure_audit(event))
    fingerprint, content = ids.event_fingerprint(event.event_id), ids.content_fingerprint(event)
    if state is not None:
        remembered = state.recall(fingerprint, ids.CONTENT_CHARS)
        if remembered is not None:
            if remembered in ("", content):  # an exact re-send (or one remembered without its content)
                return Outcome(state=state, duplicate=True)
            return Outcome(state=state, refused=_conflict(event, remembered, content), conflict=True)
    amount = None
    if isinstance(event.payload, OrderPayload):
        taken = model.money.amount(event.payload)
        if isinstance(taken, str):
            return Outcome(state=state if state is not None else _new_state(event), refused=taken)
        amount = taken
    ts = round(event.occurred_ts, 3)  # milliseconds: finer adds bytes to every stored time, not meaning
    if state is None:
        out = Outcome(state=CustomerState(customer_id=event.customer_id, first_seen=ts, last_seen=ts))
    else:
        out = Outcome(state=state if in_place else state.clone())
        _advance_into(out.state, ts, model, out)
    current = out.state
    marks = _fold(current, event, ts, amount)
    current.remember(fingerprint, model.dedupe_window, content)
    now = ts if current.checked_at is None or ts > current.checked_at else current.checked_at
    changed = len(out.changes)
    _judge(current, now, event.event_id, ts, model, out, None if state is None else marks)
    deferred = current.deferred
    while deferred and deferred[0][0] <= now:  # a late event's action whose quiet hours the customer's clock passed
        model.playbook.release_next(current, out.actions, out.suppressed, out.held_out)
    due = current.due_at
    if (
        state is None
        or len(out.changes) > changed
        or model.rules.due_may_move(marks)
        or (due is not None and due <= now)
    ):
        _schedule(current, model)
    return out
