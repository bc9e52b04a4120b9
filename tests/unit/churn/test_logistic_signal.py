"""The logistic churn model in the live product: the core's scorer against the trainer's, hostile model
files, the due time of a threshold against brute force, churn.yaml turning at_risk at it, and what explain
and the profile show."""

from __future__ import annotations

import io
import itertools
import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import yaml
from churn_helpers import brute_force, logistic_document
from journeys import DAY0, event, touchpoint
from rich.console import Console

from schemas import TouchpointEvent
from streams.churn.logistic import Logistic
from streams.core import advance, apply_event
from streams.core.churn.bgnbd import first_reaching
from streams.core.churn.features import FEATURES, GROW_WITH_TIME, features
from streams.core.churn.logistic import LogisticModel
from streams.core.churn.modelfile import ChurnModelError, load_model_file, write_model
from streams.core.engine import next_due
from streams.core.model import load_model
from streams.core.rules.compiled import CHURN_RULES, load_rules
from streams.core.rules.signals import DAY
from streams.core.state import CustomerState
from streams.explain import render_customer
from streams.settings import Settings

INTERCEPT = -0.5
WEIGHTS = (0.8, -0.5, 0.1, -0.2, 0.6, -0.1, 0.4, -0.3, 0.2, -0.4, 0.3, 0.5)
MEAN = (3.0, 1.0, 4.0, 3.5, 0.5, 3.0, 3.0, 1.5, 0.2, 0.0, 0.1, 0.1)
SCALE = (1.0, 0.5, 1.2, 0.8, 0.7, 1.0, 1.1, 0.6, 0.4, 0.3, 0.3, 0.3)
LOGIT = LogisticModel(INTERCEPT, WEIGHTS, MEAN, SCALE, 90.0, 30.0, "logit.yaml", "2026-01-01T00:00:00Z")
TRAINER = Logistic(np.array(MEAN), np.array(SCALE), np.array([INTERCEPT, *WEIGHTS]), True)


def customer(steps: list[tuple[str, float, dict]], model=None) -> CustomerState:
    """A state from (touchpoint, day, extra fields) events through the core."""
    model, state = model or load_model(), None
    for n, (kind, day, extra) in enumerate(steps, 1):
        message = {**event("c", n, "purchase" if kind == "return" else kind, DAY0 + timedelta(days=day)), **extra}
        message["touchpoint"] = kind
        state = apply_event(state, TouchpointEvent.model_validate(message), model).state
    assert state is not None
    return state


REVIEW = {"payload": {"kind": "score", "rating": 1}}
UNHAPPY = {"payload": {"kind": "support", "sentiment": -0.8}}
JOURNEYS = [
    [("purchase", 0, {})],
    [("page_view", 0, {}), ("purchase", 1, {}), ("purchase", 1, {})],  # two at one instant: rhythm 0
    [("purchase", 0, {}), ("purchase", 12, {}), ("support_ticket", 14, UNHAPPY), ("page_view", 20, {})],
    [
        ("purchase", 0, {}),
        ("return", 3, {"stage": "post_purchase", "payload": None}),
        ("review_written", 5, REVIEW),
        ("purchase", 40, {}),
    ],
]


@pytest.mark.parametrize("steps", JOURNEYS)
@pytest.mark.parametrize("later", [0.0, 2.5, 90.0, 700.0])
def test_the_live_score_is_the_trainers(steps, later):
    state = customer(steps)
    at = state.last_seen + later * DAY
    want = float(TRAINER.predict(np.array([features(state, at, 30.0)]))[0])
    rules = load_rules(CHURN_RULES, churn=LOGIT)
    values = rules.values(state, at)
    assert values["churn_risk"] == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert values["p_alive"] is None and values["expected_purchases"] is None
    parts = LOGIT.contributions(state, at)
    assert [name for name, _, _ in parts] != [] and sorted(n for n, _, _ in parts) == sorted(FEATURES)
    assert [abs(c) for _, _, c in parts] == sorted((abs(c) for _, _, c in parts), reverse=True)
    assert INTERCEPT + sum(c for _, _, c in parts) == pytest.approx(np.log(want / (1 - want)), rel=1e-9)


def test_no_score_before_a_purchase():
    rules = load_rules(CHURN_RULES, churn=LOGIT)
    nobody = customer([("page_view", 0, {})])
    assert rules.values(nobody, nobody.last_seen + DAY)["churn_risk"] is None
    view = rules.churn_view(nobody, nobody.last_seen)
    assert view is not None and view["churn_risk"] is None and view["contributions"] == []


def test_a_file_from_the_trainer_scores_as_the_trainer(tmp_path):
    document = logistic_document()
    path = tmp_path / "logit.json"
    write_model(path, document)
    model = load_model_file(path)
    assert isinstance(model, LogisticModel) and model.label == "logit.json@2026-01-01T00:00:00Z"
    trainer = Logistic(
        np.array(list(document["mean"].values())),
        np.array(list(document["scale"].values())),
        np.array([document["intercept"], *document["weights"].values()]),
        True,
    )
    for steps in JOURNEYS:
        state = customer(steps)
        at = state.last_seen + 30 * DAY
        want = float(trainer.predict(np.array([features(state, at, 30.0)]))[0])
        assert model.probability(state, at) == pytest.approx(want, rel=1e-12, abs=1e-15)


def _names(mapping: dict) -> dict:
    return dict(reversed(list(mapping.items())))


HOSTILE = [
    (lambda d: d.update(kind="logit"), "kind"),
    (lambda d: d["weights"].pop("log_events"), "weights must name exactly"),
    (lambda d: d["mean"].update(extra=1.0), "mean must name exactly"),
    (lambda d: d.update(scale=_names(d["scale"])), "scale must name exactly"),  # the features, out of order
    (lambda d: d["weights"].update(log_purchases=float("nan")), "finite"),
    (lambda d: d["mean"].update(log_events=float("inf")), "finite"),
    (lambda d: d.update(intercept=float("-inf")), "intercept"),
    (lambda d: d.update(horizon_days=0), "horizon_days"),
    (lambda d: d["scale"].update(log_returns=0.0), "scale must be positive"),
    (lambda d: d["weights"].update(log_days_since_last_seen=-0.01), "log_days_since_last_seen"),
    (lambda d: d.update(weights="many"), "weights"),
    (lambda d: d.update(surprise=1), "surprise"),
]


@pytest.mark.parametrize(("spoil", "message"), HOSTILE)
def test_a_hostile_logistic_file_is_refused_naming_what_is_wrong(tmp_path, spoil, message):
    document = logistic_document()
    spoil(document)
    path = tmp_path / "logit.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    with pytest.raises(ChurnModelError, match=message):
        load_model_file(path)


def test_negative_time_weights_are_refused_as_they_would_break_monotonicity(tmp_path):
    document = logistic_document()
    for name in GROW_WITH_TIME:
        document["weights"][name] = -abs(document["weights"][name]) - 0.1
    path = tmp_path / "logit.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    with pytest.raises(ChurnModelError, match="must not be negative") as found:
        load_model_file(path)
    assert all(name in str(found.value) for name in GROW_WITH_TIME)


def test_a_horizon_other_than_the_rules_is_refused_at_start_naming_both(tmp_path, monkeypatch):
    path = tmp_path / "logit180.yaml"
    write_model(path, logistic_document(180.0))
    monkeypatch.setenv("JOURNEY_CHURN_MODEL_FILE", str(path))
    monkeypatch.setenv("JOURNEY_RULES_FILE", str(CHURN_RULES))
    with pytest.raises(ChurnModelError, match=r"horizon_days 180 .* churn_horizon_days 90"):
        Settings().load_model()
    monkeypatch.setenv("JOURNEY_RULES_FILE", str(Path(CHURN_RULES).with_name("default.yaml")))
    assert isinstance(Settings().load_model().rules.churn, LogisticModel)  # rules that read no churn score


def rules_with(tmp_path: Path, condition: str):
    path = tmp_path / "rules.yaml"
    path.write_text(
        f"version: 1\nlifecycle:\n  - {{type: at_risk, when: {condition}}}\n  - {{type: prospect, when: {{all: []}}}}\n"
    )
    return load_rules(path, churn=LOGIT)


CASES = [
    ("gte", 0.6, 0),
    ("gt", 0.9, 1),
    ("lt", 0.8, 2),
    ("lte", 0.75, 3),
    ("gte", 0.97, 2),
]


@pytest.mark.parametrize(("op", "limit", "journey"), CASES)
def test_the_due_time_is_the_brute_force_crossing(tmp_path, op, limit, journey):
    rules = rules_with(tmp_path, f"{{signal: churn_risk, {op}: {limit}}}")
    state = customer(JOURNEYS[journey])
    after = state.last_seen
    assert rules.values(state, after)["churn_risk"] < limit  # not yet: the search has a crossing to find
    due = rules.next_due(state, after)
    want = brute_force(rules, state, after, "churn_risk", op, limit)
    assert want is not None and due == want, (due, want)
    kept = rules.next_due(state, round((after + due) / 2, 3))  # asked again before it: the kept crossing
    assert kept == due


def test_the_score_only_grows_with_time_for_a_fixed_history():
    state = customer(JOURNEYS[2])
    risks = [LOGIT.probability(state, state.last_seen + d * DAY) for d in np.linspace(0, 2000, 400)]
    assert all(b >= a for a, b in itertools.pairwise(risks)) and risks[-1] > risks[0]


def test_any_event_rejudges_and_reschedules_the_churn_rule(tmp_path):
    rules = rules_with(tmp_path, "{signal: churn_risk, gte: 0.6}")
    judge_all, _ = rules.affected_by(("page_view",))
    assert judge_all and rules.due_may_move(("page_view",))
    before = customer(JOURNEYS[2][:3])
    after = customer(JOURNEYS[2])  # a page view later: days since last seen and the event count move
    assert rules.next_due(before, after.last_seen) != rules.next_due(after, after.last_seen)


def test_a_customer_turns_at_risk_exactly_at_the_due_time_with_churn_yaml():
    model = load_model(CHURN_RULES, churn=LOGIT)
    state = None
    for n, day in enumerate([0, 10, 20, 25], 1):
        state = apply_event(state, touchpoint("c", n, "purchase", day), model).state
    assert state is not None and state.lifecycle == "loyal"
    floor = next_due(state)
    assert floor == state.last_purchase_at + 30 * DAY  # the quiet floor first: risk below 0.6 then
    assert model.rules.values(state, floor)["churn_risk"] < 0.6
    state = advance(state, floor, model).state
    assert state.lifecycle == "loyal"
    due = next_due(state)
    assert due is not None and due > floor
    assert due == brute_force(model.rules, state, floor, "churn_risk", "gte", 0.6)
    before = advance(state, round(due - 0.001, 3), model)
    assert before.changes == [] and before.state.lifecycle == "loyal"
    out = advance(state, due + 10 * DAY, model)
    change = out.changes[0]
    assert change.to == "at_risk" and change.at.timestamp() == pytest.approx(due, abs=1e-6)
    evidence = change.reason.evidence
    assert evidence["churn_risk"] == 0.6 and evidence["churn_model"] == "logit.yaml@2026-01-01T00:00:00Z"
    assert evidence["churn_horizon_days"] == 90.0
    assert change.caused_by.startswith("inactivity@")


def test_explain_and_the_profile_show_the_score_and_its_largest_contributions():
    model = load_model(CHURN_RULES, churn=LOGIT)
    state = customer(JOURNEYS[3], model)
    view = model.rules.churn_view(state, state.last_seen)
    assert view is not None and view["kind"] == "logistic" and view["model"] == LOGIT.label
    assert view["churn_risk"] == pytest.approx(LOGIT.probability(state, state.last_seen), abs=1e-6)
    assert view["p_alive"] is None and view["expected_purchases"] is None
    rows = view["contributions"]
    assert len(rows) == 5 and rows[0]["feature"] == LOGIT.contributions(state, state.last_seen)[0][0]
    json.dumps(view)  # the profile route serves it as JSON
    out = io.StringIO()
    render_customer(Console(file=out, width=400), state, [], model)
    text = out.getvalue()
    line = next(line for line in text.splitlines() if line.startswith("churn model"))
    assert "(logistic)" in line and f"churn_risk {view['churn_risk']:.3f}" in line and rows[0]["feature"] in line
    assert "p_alive" not in line


#: (journey, days quiet after the last event, how far above the score then the limit is, as a share of the way to
#: 1): a zero rhythm (two purchases at one instant), one purchase, a long quiet spell, and limits just above the
#: current score.
EDGES = [
    (1, 0.0, 1e-9),
    (1, 3.0, 0.05),
    (0, 0.0, 1e-9),
    (0, 1.0, 0.2),
    (2, 400.0, 1e-9),
    (2, 400.0, 0.002),
    (3, 0.0, 1e-12),
]


@pytest.mark.parametrize(("journey", "quiet", "above"), EDGES)
def test_the_due_time_is_the_brute_force_crossing_at_the_edges(tmp_path, journey, quiet, above):
    state = customer(JOURNEYS[journey])
    after = round(state.last_seen + quiet * DAY, 3)
    risk = LOGIT.probability(state, after)
    limit = risk + above * (1.0 - risk)
    rules = rules_with(tmp_path, f"{{signal: churn_risk, gte: {limit!r}}}")
    assert rules.values(state, after)["churn_risk"] < limit
    due = rules.next_due(state, after)
    want = brute_force(rules, state, after, "churn_risk", "gte", limit)
    assert want is not None and due == want, (due, want)


@pytest.mark.parametrize("steps", JOURNEYS)
@pytest.mark.parametrize("quiet", [0.0, 0.5, 30.0, 1000.0])
@pytest.mark.parametrize("above", [1e-9, 1e-4, 0.05, 0.3])
def test_the_crossing_is_the_bracketed_searchs_root(steps, quiet, above):
    state = customer(steps)
    after = state.last_seen + quiet * DAY
    z = LOGIT.logit(state, after)
    target = z + above * (1.0 + abs(z))
    limit = 1.0 / (1.0 + np.exp(-target))
    target = float(np.log(limit / (1.0 - limit)))  # what the limit means, after rounding
    found = LOGIT.crossing(state, after, limit)
    want = first_reaching(lambda days: LOGIT.logit(state, after + days * DAY), 0.0, target, span=90.0)
    assert found is not None and want is not None
    assert abs(found - (after + want * DAY)) < 0.002  # seconds: both within a millisecond of the root
    assert LOGIT.probability(state, found) >= limit * (1 - 1e-12)  # at or past it


def test_a_score_time_does_not_move_never_crosses():
    still = LogisticModel(0.0, (0.0,) * 4 + (0.0,) * 8, MEAN, SCALE, 90.0, 30.0, "still.yaml", "2026-01-01T00:00:00Z")
    state = customer(JOURNEYS[2])
    assert still.crossing(state, state.last_seen, 0.6) is None
    assert still.crossing(state, state.last_seen, 0.4) == state.last_seen  # already there


@pytest.mark.parametrize("steps", JOURNEYS)
def test_the_spelled_out_logit_is_the_loop_over_the_features_to_the_last_bit(steps):
    state = customer(steps)
    for later in (0.0, 0.3, 17.0, 900.0):
        at = state.last_seen + later * DAY
        z = INTERCEPT
        for w, m, s, x in zip(WEIGHTS, MEAN, SCALE, features(state, at, 30.0), strict=True):
            z += w * (x - m) / s
        assert LOGIT.logit(state, at) == z
