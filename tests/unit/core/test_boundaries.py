"""The lines the shipped rules draw, tested on both sides and on the line itself.

A threshold moved by a hair (`gte` read as `gt`, a floor dropped, a constant rounded) changes
few outputs of the bundled sample, so the golden files catch it only by luck. Each test here
puts a customer just under, exactly at and just over one line and expects what the rules file
says, read as a person reads it:

- at risk: quiet for `max(30 days, 3 × purchase rhythm)`, the rhythm being the mean days between
  purchases once there are two. Two purchases at the same instant make a rhythm of 0 days, so the
  30-day floor alone decides;
- angry: two or more contacts in 14 days that waited 30 minutes or more (`long_waits_14d`);
- angry: one or more contacts in 14 days with a sentiment of -0.3 or below (`negative_contacts_14d`).

Expected values come from those sentences, never from the code's output. The last tests run
the same customers under a copy of the rules with one number changed, to show the line is the
rules file's and moves with it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from timeline import Timeline

from schemas import STAGE_OF, OrderPayload, SupportPayload, Touchpoint, TouchpointEvent
from streams.core import CustomerState, Outcome, advance, apply_event, next_due
from streams.core.model import Model, load_model
from streams.core.rules.compiled import DEFAULT_RULES

MODEL = load_model()
T0 = datetime(2026, 3, 2, 8, tzinfo=UTC)
CUSTOMER = "edge-1"
DAY = 86_400.0
MINUTE = 60.0

# Read from streams/core/rules/default.yaml (and its signal catalogue) by a person, not imported:
AT_RISK_FLOOR_DAYS = 30  # at_risk: days_since_last_purchase >= max(30, 3 x rhythm)
LAPSED_FLOOR_DAYS = 180  # lapsed: days_since_last_purchase >= max(180, 6 x rhythm)
LONG_WAIT_S = 30 * MINUTE  # "support contacts that waited 30 minutes or more"
LONG_WAITS_FOR_ANGRY = 2  # angry: long_waits_14d >= 2
NEGATIVE_SENTIMENT = -0.3  # a contact at or below it is negative; angry: negative_contacts_14d >= 1

AT_RISK_QUIET = "{signal: days_since_last_purchase, gte: {signal: purchase_rhythm_days, times: 3, floor: 30}}"
ANGRY_LONG_WAITS = "{signal: long_waits_14d, gte: 2}"
ANGRY_NEGATIVE = "{signal: negative_contacts_14d, gte: 1}"

at, ts = Timeline(T0).at, Timeline(T0).ts


def _event(eid: str, day: float, touchpoint: Touchpoint, payload=None) -> TouchpointEvent:
    return TouchpointEvent(
        event_id=eid,
        customer_id=CUSTOMER,
        occurred_at=at(day),
        stage=STAGE_OF[touchpoint],
        touchpoint=touchpoint,
        channel="web",
        country="PT",  # the home market: no `international` trait in the way
        language="pt-PT",
        payload=payload,
    )


def _purchase(eid: str, day: float) -> TouchpointEvent:
    return _event(eid, day, Touchpoint.PURCHASE, OrderPayload(amount=25.0, currency="EUR"))


def _ticket(eid: str, day: float, *, sentiment: float | None = None, wait_seconds: float | None = None):
    return _event(eid, day, Touchpoint.SUPPORT_TICKET, SupportPayload(sentiment=sentiment, wait_seconds=wait_seconds))


def _run(events: list[TouchpointEvent], model: Model = MODEL) -> tuple[CustomerState, list[Outcome]]:
    state: CustomerState | None = None
    outcomes = []
    for ev in events:
        out = apply_event(state, ev, model)
        outcomes.append(out)
        state = out.state
    assert state is not None
    return state, outcomes


def _lifecycle_moves(out: Outcome) -> list[tuple[str | None, str | None]]:
    return [(c.from_, c.to) for c in out.changes if c.dimension == "lifecycle"]


def _entered_traits(outcomes: list[Outcome]) -> list[str]:
    return [c.to for o in outcomes for c in o.changes if c.dimension == "trait" and c.to is not None]


def _rules_copy(tmp_path: Path, old: str, new: str) -> Path:
    text = DEFAULT_RULES.read_text()
    assert text.count(old) == 1, f"the shipped rules changed: {old!r}"
    path = tmp_path / "rules.yaml"
    path.write_text(text.replace(old, new))
    return path


# --------------------------------------------------------------------------- at risk, rhythm zero


def _same_instant_buyer(model: Model = MODEL) -> CustomerState:
    """Two purchases at the same instant on day 0: a second purchase, and 0 days between them."""
    state, outcomes = _run([_purchase("p1", 0), _purchase("p2", 0)], model)
    assert state.lifecycle == "new" and state.purchases == 2
    assert [_lifecycle_moves(o) for o in outcomes] == [[(None, "new")], []]
    return state


def test_two_purchases_at_one_instant_are_at_risk_after_the_floor_exactly():
    """Rhythm 0 days: 3 x 0 = 0, so max(30, 0) = 30 days of quiet, not a moment less, not the 90 of a single buyer."""
    state = _same_instant_buyer()
    assert next_due(state) == ts(AT_RISK_FLOOR_DAYS)
    assert advance(state, ts(0) + 1, MODEL).changes == [], "a rhythm of zero must not make them at risk at once"
    assert advance(state, ts(AT_RISK_FLOOR_DAYS) - 1, MODEL).changes == []
    out = advance(state, ts(AT_RISK_FLOOR_DAYS), MODEL)
    assert _lifecycle_moves(out) == [("new", "at_risk")]
    [change] = out.changes
    assert change.at == at(AT_RISK_FLOOR_DAYS)
    assert change.reason.evidence["purchase_rhythm_days"] == 0
    assert change.reason.evidence["days_since_last_purchase"] == AT_RISK_FLOOR_DAYS
    late = advance(state, ts(AT_RISK_FLOOR_DAYS) + 1, MODEL)
    assert _lifecycle_moves(late) == [("new", "at_risk")] and late.changes[0].at == at(AT_RISK_FLOOR_DAYS)


def test_a_rhythm_of_zero_is_treated_like_any_short_rhythm():
    """One second between the purchases instead of none: the same floor, the same day at risk."""
    state, _ = _run([_purchase("p1", 0), _purchase("p2", 1 / DAY)])
    apart = advance(state, ts(AT_RISK_FLOOR_DAYS) + 1, MODEL)
    assert _lifecycle_moves(apart) == [("new", "at_risk")]
    assert apart.changes[0].at == at(AT_RISK_FLOOR_DAYS + 1 / DAY)


def test_two_purchases_at_one_instant_lapse_after_the_lapsed_floor():
    state = _same_instant_buyer()
    at_risk = advance(state, ts(AT_RISK_FLOOR_DAYS), MODEL).state
    assert next_due(at_risk) == ts(LAPSED_FLOOR_DAYS)
    assert advance(at_risk, ts(LAPSED_FLOOR_DAYS) - 1, MODEL).changes == []
    assert _lifecycle_moves(advance(at_risk, ts(LAPSED_FLOOR_DAYS), MODEL)) == [("at_risk", "lapsed")]


def test_the_rhythm_zero_floor_is_the_rules_files(tmp_path):
    """With the floor at 31 days in a copy of the rules, day 30 is no longer enough."""
    model = load_model(_rules_copy(tmp_path, AT_RISK_QUIET, AT_RISK_QUIET.replace("floor: 30", "floor: 31")))
    state = _same_instant_buyer(model)
    assert advance(state, ts(30), model).changes == []
    assert _lifecycle_moves(advance(state, ts(31), model)) == [("new", "at_risk")]


# --------------------------------------------------------------------------- long waits: 30 minutes


def _two_waits(wait_seconds: float, model: Model = MODEL) -> tuple[CustomerState, list[Outcome]]:
    """Two neutral tickets a day apart, each having waited `wait_seconds`."""
    return _run(
        [
            _event("v1", 0, Touchpoint.PAGE_VIEW),
            _ticket("w1", 1, wait_seconds=wait_seconds),
            _ticket("w2", 2, wait_seconds=wait_seconds),
        ],
        model,
    )


@pytest.mark.parametrize("wait_seconds", [LONG_WAIT_S - 1, LONG_WAIT_S - 0.001])
def test_waits_just_under_30_minutes_are_not_long(wait_seconds):
    state, outcomes = _two_waits(wait_seconds)
    assert "angry" not in state.traits
    assert "angry" not in _entered_traits(outcomes)


@pytest.mark.parametrize("wait_seconds", [LONG_WAIT_S, LONG_WAIT_S + 1])
def test_two_waits_of_30_minutes_or_more_make_angry(wait_seconds):
    state, outcomes = _two_waits(wait_seconds)
    assert state.traits.get("angry") == ts(2), "angry from the second long wait on"
    assert "angry" not in _entered_traits(outcomes[:2]), "one long wait is not enough"
    [change] = [c for c in outcomes[2].changes if c.to == "angry"]
    assert change.reason.rule == "trait.angry"
    assert change.reason.evidence["long_waits_14d"] == LONG_WAITS_FOR_ANGRY


def test_one_wait_at_the_line_and_one_under_it_are_one_long_wait():
    state, _ = _run(
        [
            _event("v1", 0, Touchpoint.PAGE_VIEW),
            _ticket("w1", 1, wait_seconds=LONG_WAIT_S),
            _ticket("w2", 2, wait_seconds=LONG_WAIT_S - 1),
        ]
    )
    assert "angry" not in state.traits


def test_the_number_of_long_waits_is_the_rules_files(tmp_path):
    """With `long_waits_14d >= 3` in a copy of the rules, two waits of 30 minutes are not enough."""
    model = load_model(_rules_copy(tmp_path, ANGRY_LONG_WAITS, ANGRY_LONG_WAITS.replace("gte: 2", "gte: 3")))
    state, _ = _two_waits(LONG_WAIT_S, model)
    assert "angry" not in state.traits


# --------------------------------------------------------------------------- sentiment: -0.3


def _one_contact(sentiment: float, model: Model = MODEL) -> tuple[CustomerState, list[Outcome]]:
    """One ticket with `sentiment`, answered at once (no long wait)."""
    return _run([_event("v1", 0, Touchpoint.PAGE_VIEW), _ticket("s1", 1, sentiment=sentiment, wait_seconds=60)], model)


@pytest.mark.parametrize("sentiment", [-0.29, -0.2999])
def test_a_sentiment_just_above_minus_0_3_is_not_negative(sentiment):
    state, outcomes = _one_contact(sentiment)
    assert "angry" not in state.traits
    assert "angry" not in _entered_traits(outcomes)


@pytest.mark.parametrize("sentiment", [NEGATIVE_SENTIMENT, -0.3001, -0.31])
def test_a_sentiment_at_or_below_minus_0_3_makes_angry(sentiment):
    state, outcomes = _one_contact(sentiment)
    assert state.traits.get("angry") == ts(1)
    [change] = [c for c in outcomes[1].changes if c.to == "angry"]
    assert change.reason.rule == "trait.angry"
    assert change.reason.evidence["negative_contacts_14d"] == 1


def test_a_negative_contact_survives_a_round_trip_through_json():
    """The line holds for a state read back from Redis too: -0.3 stays -0.3, not -0.29999…"""
    state, _ = _one_contact(NEGATIVE_SENTIMENT)
    again = CustomerState.from_json(state.to_json())
    assert again.support_log == state.support_log
    later = apply_event(again, _event("v2", 2, Touchpoint.PAGE_VIEW), MODEL)
    assert "angry" in later.state.traits and later.changes == []


def test_the_number_of_negative_contacts_is_the_rules_files(tmp_path):
    """With `negative_contacts_14d >= 2` in a copy of the rules, one contact at -0.3 is not enough."""
    model = load_model(_rules_copy(tmp_path, ANGRY_NEGATIVE, ANGRY_NEGATIVE.replace("gte: 1", "gte: 2")))
    state, _ = _one_contact(NEGATIVE_SENTIMENT, model)
    assert "angry" not in state.traits
