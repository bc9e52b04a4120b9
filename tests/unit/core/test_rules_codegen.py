"""The generated judge (`streams/core/rules/codegen.py`) against the closures it replaces on the hot path.

Both are compiled from the same rules; the closures are simple enough to read as the meaning
of a rule. They must agree on every customer at every instant, for the shipped rules and for a
file that uses every operator and form. And the generated source must hold no text of the file.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from schemas import TouchpointEvent
from streams.core import apply_event
from streams.core.churn.bgnbd import Params
from streams.core.churn.modelfile import ChurnModel
from streams.core.model import load_model
from streams.core.rules.compiled import CHURN_RULES, DEFAULT_RULES, Rules, load_rules
from streams.core.state import CustomerState
from streams.local.sample import generate

DAY = 86_400.0

#: Every operator, `not`, empty `all` / `any`, thresholds scaled from signals (floor, ceil, plus,
#: an age against an age), bools and lists.
EVERY_FORM = """\
version: 1
settings: {home_countries: [PT, ES], home_languages: [pt], first_rhythm_days: 20}
lifecycle:
  - type: lapsed
    when:
      all:
        - {signal: purchases, gt: 0}
        - {signal: days_since_last_purchase, gt: {signal: purchase_rhythm_days, times: 2.5, plus: 1, floor: 40, ceil: 200}}
  - type: at_risk
    when: {any: [{signal: latest_nps, in: [0, 1, 2, 3]}, {signal: days_since_last_seen, gte: 45}]}
  - type: loyal
    when: {all: [{signal: purchases, gte: 2}, {not: {signal: returns, ne: 0}}]}
  - type: free_user
    when: {signal: free_plan, eq: true}
  - type: new
    when: {signal: purchases, eq: 1}
  - type: prospect
    when: {all: []}
traits:
  - type: never
    when: {any: []}
  - type: abroad
    when: {signal: international, ne: false}
  - type: picky
    when: {signal: latest_rating, not_in: [3, 4, 5]}
    clear_when: {signal: days_since_last_seen, gt: 10}
  - type: reviewer
    when:
      all:
        - {signal: days_since_negative_review, lt: 90}
        - not: {signal: days_since_positive_review, lte: {signal: days_since_negative_review, plus: -1}}
  - type: busy_support
    when: {any: [{signal: support_contacts_7d, gte: 2}, {signal: follow_ups_7d, gte: 1}, {signal: long_waits_14d, gt: 0}]}
  - type: slow_decider
    when: {signal: hours_first_view_to_purchase, gt: 48}
  - type: spender
    when: {signal: average_spend, gte: {signal: total_spend, times: 0.5}}
"""


def _states(events: int = 4000) -> list[CustomerState]:
    """States of generated customers after each of their events (a copy per step)."""
    model = load_model()
    states: dict[str, CustomerState] = {}
    seen = []
    for i, raw in enumerate(generate(400, seed=11)):
        if i == events:
            break
        event = TouchpointEvent.model_validate(raw)
        out = apply_event(states.get(event.customer_id), event, model)
        states[event.customer_id] = out.state
        seen.append(out.state)
    return seen


STATES = _states()


def _by_closures(rules: Rules, state: CustomerState, now: float):
    values = rules.values(state, now)
    added, dropped = rules.traits_now(values, state.traits)
    return rules.lifecycle_type(values).type, sorted(r.type for r in added), sorted(r.type for r in dropped)


def _by_generated(rules: Rules, state: CustomerState, now: float):
    life, added, dropped = rules.judge_for(None, True)(state, now, state.traits)
    dropped += rules.undefined_traits(state.traits)
    return life.type, sorted(r.type for r in added), sorted(r.type for r in dropped)


@pytest.mark.parametrize("rules_text", [None, EVERY_FORM, "churn"], ids=["shipped", "every-form", "churn-model"])
def test_generated_judge_agrees_with_the_closures(tmp_path: Path, rules_text: str | None):
    path = DEFAULT_RULES if rules_text is None else CHURN_RULES if rules_text == "churn" else tmp_path / "rules.yaml"
    if rules_text is not None and rules_text != "churn":
        path.write_text(rules_text)
    churn = ChurnModel(Params(0.243, 30.9, 0.793, 2.426), "fit.yaml", "2026-01-01T00:00:00Z")
    rules = load_rules(path, churn=churn if rules_text == "churn" else None)
    rng = random.Random(3)
    trait_names = [r.type for r in rules.traits] + ["retired_trait"]
    answers = set()
    for state in STATES:
        state = state.clone()
        # Held traits at random, so both the add and the clear branches run (and one the rules lack).
        state.traits = {name: state.last_seen for name in trait_names if rng.random() < 0.3}
        for later in (0.0, 0.5, 3, 13.9, 14, 29.99, 45, 61, 200, 400):
            now = state.last_seen + later * DAY
            want = _by_closures(rules, state, now)
            assert _by_generated(rules, state, now) == want, (state.customer_id, later)
            answers.add(want[0])
            answers.update(f"+{t}" for t in want[1])
            answers.update(f"-{t}" for t in want[2])
    # The comparison meant something: many different answers were reached.
    assert len(answers) >= 12, answers


@pytest.mark.parametrize("marks", [("survey_response",), ("page_view", "@pre_buy"), ("ad_click",), ("purchase",)])
def test_a_judge_of_some_rules_answers_only_for_them(marks):
    rules = load_rules()
    judge_lifecycle, candidates = rules.affected_by(marks)
    judge = rules.judge_for(marks, False)
    if not judge_lifecycle and not candidates:
        assert judge is None  # nothing to judge: the core skips the customer
        return
    names = {r.type for r in candidates}
    for state in STATES[::7]:
        held = {name: state.last_seen for name in names if len(name) % 2}
        life, added, dropped = judge(state, state.last_seen, held)
        assert (life is not None) == judge_lifecycle
        assert {r.type for r in added} <= names - held.keys() and {r.type for r in dropped} <= held.keys()


def test_no_text_of_the_rules_file_is_in_the_generated_source(tmp_path: Path):
    hostile = EVERY_FORM.replace(
        "  - type: never\n",
        "  - type: never\n    description: \"__import__('os').system('touch /tmp/pwned') # 987654.321\"\n",
    ).replace("times: 2.5, plus: 1, floor: 40", "times: 2.5, plus: 1, floor: 987654.321")
    path = tmp_path / "rules.yaml"
    path.write_text(hostile)
    rules = load_rules(path)
    source = rules.judge_for(None, True).source
    for text in ("__import__", "987654", "picky", "reviewer", "never", "lapsed", "PT", "2.5"):
        assert text not in source, text
    assert "def judge(st, now, held):" in source and "_k" in source and "_T" in source


@pytest.mark.parametrize("rules_text", [None, EVERY_FORM], ids=["shipped", "every-form"])
def test_time_alone_changes_only_the_rules_that_read_an_age_or_a_window(tmp_path: Path, rules_text: str | None):
    """The core judges only these at a due time; judging every rule must find nothing more.

    The states come from applying events one after another, so every rule's answer is up to date
    at the state's last judgement; later, with no event, only time has moved.
    """
    path = DEFAULT_RULES if rules_text is None else tmp_path / "rules.yaml"
    if rules_text is not None:
        path.write_text(rules_text)
    rules = load_rules(path)
    if rules_text is not None:  # the states were judged by the shipped rules: make them this file's first
        states = []
        for state in STATES:
            state = state.clone()
            life, added, dropped = rules.judge_for(None, True)(state, state.last_seen, state.traits)
            state.lifecycle = life.type
            state.traits = {
                **{t: 0.0 for t in state.traits if t not in {r.type for r in dropped}},
                **{r.type: 0.0 for r in added},
            }
            states.append(state)
    else:
        states = STATES
    timed = rules.judge_for(("@time",), False)
    moved = 0
    for state in states:
        for later in (0.5, 7.01, 14.01, 30.01, 60.01, 200, 366):
            now = state.last_seen + later * DAY
            life, added, dropped = rules.judge_for(None, False)(state, now, state.traits)
            t_life, t_added, t_dropped = timed(state, now, state.traits)
            assert (t_life.type, t_added, t_dropped) == (life.type, added, dropped), (state.customer_id, later)
            moved += life.type != state.lifecycle or bool(added or dropped)
    assert moved > 100  # time did change many answers, so the comparison was not empty
