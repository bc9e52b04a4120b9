"""The churn signals in the rules: no value without a model, the model's values with one, and due times.

The due time of a comparison on a churn score is computed from the model (`Rules.next_due`); here it is
checked against a brute-force search over time, and a customer driven through the core with the shipped
churn.yaml turns at_risk exactly then.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from journeys import DAY0, touchpoint

from streams.core import advance, apply_event
from streams.core.churn import bgnbd
from streams.core.churn.bgnbd import Params
from streams.core.churn.modelfile import ChurnModel
from streams.core.engine import next_due
from streams.core.model import load_model
from streams.core.rules.compiled import CHURN_RULES, RulesError, load_rules
from streams.core.rules.signals import CATALOGUE, DAY, TIME, churn_inputs
from streams.core.state import CustomerState

MODEL = ChurnModel(Params(0.243, 30.9, 0.793, 2.426), "fit.yaml", "2026-01-01T00:00:00Z")
CHURN = ("p_alive", "churn_risk", "expected_purchases")
T0 = DAY0.timestamp()


def buyer(days: list[float], customer: str = "c") -> CustomerState:
    """A state with purchases on these days after DAY0 (through the core, default rules, no model)."""
    model, state = load_model(), None
    for n, day in enumerate(days, 1):
        state = apply_event(state, touchpoint(customer, n, "purchase", day), model).state
    assert state is not None
    return state


def rules_text(condition: str, horizon: float = 90) -> str:
    return f"""
version: 1
settings: {{churn_horizon_days: {horizon}}}
lifecycle:
  - {{type: at_risk, when: {condition}}}
  - {{type: prospect, when: {{all: []}}}}
"""


def rules_with(tmp_path: Path, condition: str, horizon: float = 90):
    path = tmp_path / "rules.yaml"
    path.write_text(rules_text(condition, horizon))
    return load_rules(path, churn=MODEL)


def test_no_value_without_a_model_or_a_purchase():
    rules, state = load_rules(), buyer([0, 10, 30])
    values = rules.values(state, state.last_seen + 5 * DAY)
    assert all(values[name] is None for name in CHURN)
    with_model = load_rules(churn=MODEL)
    nobody = CustomerState(customer_id="p", first_seen=T0, last_seen=T0)
    assert all(with_model.values(nobody, T0 + DAY)[name] is None for name in CHURN)
    assert churn_inputs(nobody, T0, with_model.ctx) is None


@pytest.mark.parametrize("days", [[0], [0, 3], [0, 10, 30, 31], [2, 200]])
@pytest.mark.parametrize("later", [0.0, 1.5, 40.0, 365.0])
@pytest.mark.parametrize("horizon", [30.0, 90.0])
def test_values_are_the_models(tmp_path, days, later, horizon):
    rules = rules_with(tmp_path, "{signal: churn_risk, gte: 0.5}", horizon)
    state = buyer(days)
    now = state.last_seen + later * DAY
    x, t_x, T = len(days) - 1, days[-1] - days[0], days[-1] - days[0] + later
    values = rules.values(state, now)
    p = MODEL.params
    assert values["p_alive"] == pytest.approx(bgnbd.p_alive(p, x, t_x, T), rel=1e-12)
    assert values["churn_risk"] == pytest.approx(bgnbd.churn_risk(p, x, t_x, T, horizon), rel=1e-12)
    assert values["expected_purchases"] == pytest.approx(bgnbd.expected_purchases(p, x, t_x, T, horizon), rel=1e-12)
    assert churn_inputs(state, now, rules.ctx) == pytest.approx({"x": x, "t_x": t_x, "T": T, "horizon_days": horizon})


def test_the_signals_move_on_purchases_and_time_only():
    for name in CHURN:
        assert CATALOGUE[name].on == frozenset({"purchase", TIME})
        assert CATALOGUE[name].curve is not None


@pytest.mark.parametrize(
    "condition",
    [
        "{signal: churn_risk, gte: {signal: purchases}}",
        "{signal: purchases, gte: {signal: churn_risk}}",
        "{signal: churn_risk, eq: 0.5}",
        "{signal: p_alive, in: [0.5]}",
    ],
)
def test_a_churn_score_is_compared_with_a_number_only(tmp_path, condition):
    path = tmp_path / "rules.yaml"
    path.write_text(rules_text(condition))
    with pytest.raises(RulesError, match="line 5"):
        load_rules(path)


def brute_force(rules, state: CustomerState, after: float, name: str, op: str, limit: float) -> float | None:
    """The first millisecond after `after` at which the comparison's answer differs from its answer at `after`:
    a scan on a 0.01-day grid, then on a 1-second grid, then on a millisecond grid (within two years)."""
    compare = {"gte": float.__ge__, "gt": float.__gt__, "lte": float.__le__, "lt": float.__lt__}[op]

    def answer(at: float) -> bool:
        return compare(float(rules.values(state, at)[name]), limit)

    start = answer(after)
    lo = after
    for step in (0.01 * DAY, 1.0, 0.001):
        at = lo
        while answer(at) == start:
            lo = at
            at = round(at + step, 3)
            if at > after + 730 * DAY:
                return None
    return at


CASES = [
    ("churn_risk", "gte", 0.6, [0, 10, 20, 25]),
    ("churn_risk", "gt", 0.9, [0, 40]),
    ("churn_risk", "lt", 0.8, [0]),
    ("churn_risk", "lte", 0.75, [0, 5, 9]),
    ("p_alive", "lte", 0.5, [0, 10, 20]),
    ("p_alive", "gte", 0.3, [0, 30]),
    ("expected_purchases", "lt", 0.5, [0, 7, 14, 21]),
    ("expected_purchases", "gt", 0.2, [0, 60]),
]


@pytest.mark.parametrize(("name", "op", "limit", "days"), CASES)
def test_the_due_time_is_the_brute_force_crossing(tmp_path, name, op, limit, days):
    rules = rules_with(tmp_path, f"{{signal: {name}, {op}: {limit}}}")
    state = buyer(days)
    after = state.last_seen
    due = rules.next_due(state, after)
    want = brute_force(rules, state, after, name, op, limit)
    assert want is not None and due == want, (due, want)


def test_no_due_time_once_past_the_threshold_or_never_reached(tmp_path):
    reached = rules_with(tmp_path, "{signal: churn_risk, gte: 0.1}")  # a single purchase: already above
    assert reached.next_due(buyer([0]), T0) is None
    never = rules_with(tmp_path, "{signal: p_alive, lte: 0.5}")  # no repeat purchase: P(alive) stays 1
    assert never.next_due(buyer([0]), T0 + DAY) is None
    no_model = load_rules(CHURN_RULES)
    state = buyer([0, 10, 20, 25])
    assert no_model.next_due(state, state.last_seen) == state.last_seen + 30 * DAY  # only the 30-day floor


def test_a_customer_turns_at_risk_exactly_at_the_due_time_with_churn_yaml():
    model = load_model(CHURN_RULES, churn=MODEL)
    state = None
    for n, day in enumerate([0, 10, 20, 25], 1):
        state = apply_event(state, touchpoint("c", n, "purchase", day), model).state
    assert state is not None and state.lifecycle == "loyal"
    floor = next_due(state)
    assert floor == state.last_purchase_at + 30 * DAY  # the quiet floor first: risk below 0.6 then
    state = advance(state, floor, model).state
    assert state.lifecycle == "loyal"
    due = next_due(state)
    assert due is not None and due > floor
    want = brute_force(model.rules, state, floor, "churn_risk", "gte", 0.6)
    assert due == want
    before = advance(state, round(due - 0.001, 3), model)
    assert before.changes == [] and before.state.lifecycle == "loyal"
    out = advance(state, due + 10 * DAY, model)
    change = out.changes[0]
    assert change.to == "at_risk" and change.at.timestamp() == pytest.approx(due, abs=1e-6)
    evidence = change.reason.evidence
    assert evidence["churn_risk"] == 0.6 and evidence["churn_model"] == "fit.yaml@2026-01-01T00:00:00Z"
    assert evidence["churn_horizon_days"] == 90.0
    assert change.caused_by.startswith("inactivity@")


def test_churn_yaml_without_a_model_never_turns_at_risk_by_the_model():
    model = load_model(CHURN_RULES)
    state = None
    for n, day in enumerate([0, 10, 20, 25], 1):
        state = apply_event(state, touchpoint("c", n, "purchase", day), model).state
    assert state is not None
    out = advance(state, state.last_seen + 179 * DAY, model)
    assert [c.to for c in out.changes if c.dimension.value == "lifecycle"] == []
    out = advance(state, state.last_seen + 181 * DAY, model)
    assert [c.to for c in out.changes if c.dimension.value == "lifecycle"] == ["lapsed"]  # as the default rules


def test_a_purchase_moves_the_due_time_and_resets_the_risk():
    model = load_model(CHURN_RULES, churn=MODEL)
    state = None
    for n, day in enumerate([0, 10, 20, 25], 1):
        state = apply_event(state, touchpoint("c", n, "purchase", day), model).state
    assert state is not None
    quiet = advance(state, state.last_seen + 80 * DAY, model)
    assert quiet.state.lifecycle == "at_risk"
    back = apply_event(quiet.state, touchpoint("c", 9, "purchase", 25 + 81), model)
    assert back.state.lifecycle == "loyal"
    due = next_due(back.state)
    assert due is not None and due >= (DAY0 + timedelta(days=25 + 81 + 30)).timestamp()


def test_a_kept_crossing_is_the_one_a_fresh_search_finds(tmp_path):
    """The rules keep a crossing per purchase history: asked again later (other events, other due times), the
    answer is the one a search from that later instant finds."""
    kept = rules_with(tmp_path, "{signal: churn_risk, gte: 0.6}")
    state = buyer([0, 10, 20, 25])
    first = kept.next_due(state, state.last_seen)
    for later in (1.0, 17.5, 44.0):
        fresh = rules_with(tmp_path, "{signal: churn_risk, gte: 0.6}")
        after = state.last_seen + later * DAY
        assert kept.next_due(state, after) == fresh.next_due(state, after) == first
    moved = buyer([0, 10, 20, 25, 30])  # another purchase: another history, another crossing
    assert kept.next_due(moved, moved.last_seen) == brute_force(kept, moved, moved.last_seen, "churn_risk", "gte", 0.6)
