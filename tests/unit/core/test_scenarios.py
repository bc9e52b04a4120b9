"""Every customer type of the shipped rules, through the pure core: a journey that makes it, its
playbook action, a near-miss journey one threshold short that does not, and decay for the traits
that decay. The journeys are data (tests/scenarios.py), so that the same table can be run
through the live broker.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from scenarios import (
    INACTIVITY,
    MINUTE,
    SCENARIOS,
    Advance,
    Expect,
    Journey,
    Scenario,
    at,
    iso_z,
    ts,
)

from schemas import TouchpointEvent
from streams.core import Outcome, advance, apply_event
from streams.core.model import load_model
from streams.core.playbook.playbook import DEFAULT_PLAYBOOK_FILE
from streams.core.rules.compiled import DEFAULT_RULES

MODEL = load_model()
BY_NAME = {s.name: s for s in SCENARIOS}


def play(steps, state=None, model=MODEL):
    """Run the steps in order; returns the final state and every outcome."""
    outcomes: list[Outcome] = []
    for step in steps:
        if isinstance(step, Advance):
            assert state is not None, "a journey starts with an event"
            out = advance(state, ts(step.day), model)
        else:
            out = apply_event(state, step, model)
        outcomes.append(out)
        state = out.state
    return state, outcomes


def changes_of(outcomes):
    return [c for o in outcomes for c in o.changes]


def matching(changes, expect: Expect):
    return [c for c in changes if (c.dimension, c.from_, c.to) == (expect.dimension, expect.from_, expect.to)]


def check_change(changes, expect: Expect):
    """Exactly one change of that dimension/from/to, with the expected rule, evidence, cause and time."""
    found = matching(changes, expect)
    assert len(found) == 1, (
        f"expected one {expect.dimension} change {expect.from_} -> {expect.to}, got "
        f"{[(c.dimension, c.from_, c.to) for c in changes]}"
    )
    [change] = found
    assert change.reason.rule == expect.rule
    shown = {k: change.reason.evidence.get(k, "<missing>") for k in expect.evidence}
    assert shown == expect.evidence
    assert change.at == at(expect.at_day)
    if expect.caused_by == INACTIVITY:
        assert change.caused_by == f"inactivity@{iso_z(expect.at_day)}"
    else:
        assert change.caused_by == expect.caused_by
    return change


# --------------------------------------------------------------------------- the table itself


def _shipped_types():
    spec = yaml.safe_load(Path(DEFAULT_RULES).read_text())
    return [r["type"] for r in spec["lifecycle"]], [r["type"] for r in spec["traits"]]


def test_the_table_covers_every_type_of_the_shipped_rules():
    lifecycle, traits = _shipped_types()
    assert len(lifecycle) == 7 and len(traits) == 15
    assert sorted(BY_NAME) == sorted(lifecycle + traits)
    assert len(BY_NAME) == len(SCENARIOS), "one scenario per type"
    for s in SCENARIOS:
        assert s.expect_type.to == s.name
        assert s.expect_type.dimension == ("lifecycle" if s.name in lifecycle else "trait")


def test_every_scenario_uses_its_own_customers_and_unique_event_ids():
    customers, event_ids = [], []
    for s in SCENARIOS:
        for steps in (s.events + s.clear_events, s.near_miss_events):
            events = [e for e in steps if isinstance(e, TouchpointEvent)]
            assert len({e.customer_id for e in events}) == 1, s.name
            assert [e.occurred_at for e in events] == sorted(e.occurred_at for e in events), "steps in time order"
            event_ids += [e.event_id for e in events]
        customers += [s.customer, s.near_miss_customer]
    assert len(set(customers)) == len(customers)
    assert len(set(event_ids)) == len(event_ids)


def test_scenario_customers_are_in_the_home_market_unless_about_international():
    for s in SCENARIOS:
        for e in s.events + s.near_miss_events:
            if isinstance(e, TouchpointEvent) and s.name != "international":
                assert (e.country, e.language) == ("PT", "pt-PT"), s.name


# --------------------------------------------------------------------------- each scenario


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_journey_produces_the_type_change(scenario: Scenario):
    state, outcomes = play(scenario.events)
    check_change(changes_of(outcomes), scenario.expect_type)
    if scenario.expect_type.dimension == "lifecycle":
        assert state.lifecycle == scenario.name
    else:
        assert scenario.name in state.traits
        assert state.traits[scenario.name] == ts(scenario.expect_type.at_day)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_journey_triggers_the_playbook_action(scenario: Scenario):
    """The change triggers the playbook's action for the type, at the change's time, with its channel and priority."""
    playbook = yaml.safe_load(DEFAULT_PLAYBOOK_FILE.read_text())
    assert playbook["triggers"][scenario.name] == [scenario.expect_action]
    spec = playbook["actions"][scenario.expect_action]
    _, outcomes = play(scenario.events)
    change = check_change(changes_of(outcomes), scenario.expect_type)
    [out] = [o for o in outcomes if change in o.changes]
    sent = [a for a in out.actions if a.triggered_by == change.change_id]
    if scenario.expect_suppressed is None:
        assert [a.action for a in sent] == [scenario.expect_action]
        [action] = sent
        assert action.customer_id == scenario.customer
        assert (action.channel, action.priority.value) == (spec["channel"], spec["priority"])
        assert action.at == change.at
        assert action.params == {**spec.get("params", {}), "type": scenario.name, "rule": scenario.expect_type.rule}
    else:
        assert sent == []
        assert any(
            s.action == scenario.expect_action and scenario.expect_suppressed in s.reason for s in out.suppressed
        )


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_near_miss_does_not_produce_the_type(scenario: Scenario):
    state, outcomes = play(scenario.near_miss_events)
    expect = scenario.expect_type
    assert [c for c in changes_of(outcomes) if c.to == expect.to] == []
    assert not any(
        a.action == scenario.expect_action and a.params.get("type") == scenario.name
        for o in outcomes
        for a in o.actions
    )
    if expect.dimension == "lifecycle":
        assert state.lifecycle != scenario.name
    else:
        assert scenario.name not in state.traits


DECAYING = [s for s in SCENARIOS if s.expect_cleared is not None]


def test_the_decaying_traits_are_covered():
    assert {s.name for s in DECAYING} >= {"angry", "negative_experience"}


@pytest.mark.parametrize("scenario", DECAYING, ids=lambda s: s.name)
def test_trait_decays(scenario: Scenario):
    """The trait is added, then dropped - by the clock or by a later event - with `trait.<name>.cleared`."""
    state, _ = play(scenario.events)
    assert scenario.name in state.traits
    state, later = play(scenario.clear_events, state)
    cleared = check_change(changes_of(later), scenario.expect_cleared)
    assert cleared.reason.rule == f"trait.{scenario.name}.cleared"
    assert scenario.name not in state.traits
    # clearing a trait sends nothing for it
    assert not any(a.triggered_by == cleared.change_id for o in later for a in o.actions)


def test_angry_is_still_held_one_second_before_the_fourteen_days():
    s = BY_NAME["angry"]
    state, _ = play(s.events)
    complaint_day = s.expect_type.at_day
    out = advance(state, ts(complaint_day + 14) - 1, MODEL)
    assert "angry" in out.state.traits and out.changes == []
    out = advance(out.state, ts(complaint_day + 14), MODEL)
    assert [(c.from_, c.to, c.reason.rule) for c in out.changes] == [("angry", None, "trait.angry.cleared")]


def test_negative_experience_also_wears_off_after_sixty_days():
    s = BY_NAME["negative_experience"]
    state, _ = play(s.events)
    review_day = s.expect_type.at_day
    out = advance(state, ts(review_day + 61), MODEL)
    [cleared] = [c for c in out.changes if c.from_ == "negative_experience"]
    assert cleared.reason.rule == "trait.negative_experience.cleared"
    assert cleared.at == at(review_day + 60)
    assert cleared.caused_by == f"inactivity@{iso_z(review_day + 60)}"


def test_a_positive_review_after_a_negative_one_does_not_stall_the_clock():
    """After a negative review answered by a positive one, the clock still moves the customer on:
    a single buyer is at risk max(30, 3 x first_rhythm_days 30) = 90 days after the purchase.

    The negative_experience rule compares two ages that grow together
    (days_since_positive_review < days_since_negative_review): their difference never changes,
    so time alone can never flip it - yet every check schedules a wake-up one (positive -
    negative) gap later. Here the gap is a minute: the core wakes the customer every minute,
    stops after MAX_STEPS wake-ups, and the at-risk change never comes.
    """
    j = Journey("stall").buy(0).review(5, rating=2).review(5 + MINUTE, rating=5)
    state, outcomes = play(j.steps)
    assert [c.reason.rule for c in changes_of(outcomes) if c.dimension == "trait" and "negative" in c.reason.rule] == [
        "trait.negative_experience",
        "trait.negative_experience.cleared",
    ]
    due = 90
    out = advance(state, ts(due + 1), MODEL)
    assert [(c.from_, c.to, c.caused_by) for c in out.changes if c.dimension == "lifecycle"] == [
        ("new", "at_risk", f"inactivity@{iso_z(due)}")
    ]
    assert out.state.lifecycle == "at_risk"
