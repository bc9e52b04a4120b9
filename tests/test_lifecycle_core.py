"""Unit tests of the pure core: lifecycle rules, inactivity timing, idempotence, ids and the playbook.

No broker, no Redis: events are built in memory and folded with `apply_event` / `advance`.
Expected values are computed from the thresholds, never copied from the code's output.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas import STAGE_OF, OrderPayload, ScorePayload, SupportPayload, Touchpoint, TouchpointEvent
from streams.core import CustomerState, Outcome, advance, apply_event, ids, next_due
from streams.core import lifecycle
from streams.core.playbook import DEFAULT_PLAYBOOK, ActionSpec
from streams.settings import DAY, Thresholds

TH = Thresholds()
T0 = datetime(2026, 1, 1, tzinfo=UTC)
CUSTOMER = "cust-1"


# --------------------------------------------------------------------------- helpers


def at(day: float) -> datetime:
    return T0 + timedelta(days=day)


def ts(day: float) -> float:
    return at(day).timestamp()


def iso_z(t: float) -> str:
    """Whole-second UTC instant as `YYYY-MM-DDTHH:MM:SSZ` (written independently of lifecycle.iso)."""
    assert t == int(t), "helpers only build whole-second due times"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event(eid: str, day: float, touchpoint: Touchpoint | str = Touchpoint.PAGE_VIEW, customer: str = CUSTOMER,
          payload=None, **extra) -> TouchpointEvent:
    tp = Touchpoint(touchpoint)
    return TouchpointEvent(event_id=eid, customer_id=customer, occurred_at=at(day), stage=STAGE_OF[tp],
                           touchpoint=tp, channel="web", payload=payload, **extra)


def purchase(eid: str, day: float, amount: float = 100.0, customer: str = CUSTOMER, **order) -> TouchpointEvent:
    return event(eid, day, Touchpoint.PURCHASE, customer=customer,
                 payload=OrderPayload(amount=amount, currency="EUR", **order))


def run(events, th: Thresholds = TH, state: CustomerState | None = None, playbook=DEFAULT_PLAYBOOK):
    """Fold events in the given order; returns the final state and every outcome."""
    outcomes: list[Outcome] = []
    for ev in events:
        out = apply_event(state, ev, th, playbook)
        outcomes.append(out)
        state = out.state
    return state, outcomes


def all_changes(outcomes):
    return [c for o in outcomes for c in o.changes]


def all_actions(outcomes):
    return [a for o in outcomes for a in o.actions]


def buyer(days, th: Thresholds = TH, prefix: str = "p"):
    """A customer who bought on each of `days` (in order); returns the final state and outcomes."""
    return run([purchase(f"{prefix}{i}", d) for i, d in enumerate(days)], th)


def expected_quiet_days(purchase_days, th: Thresholds = TH) -> float:
    """The at-risk quiet period in days, from the README formula."""
    if len(purchase_days) < 2:
        rhythm = th.first_rhythm_days
    else:
        rhythm = (purchase_days[-1] - purchase_days[0]) / (len(purchase_days) - 1)
    return max(th.at_risk_floor_days, th.at_risk_rhythm_multiple * rhythm)


def loyal_days(gap: float, th: Thresholds = TH) -> list[float]:
    """Purchase days that make a customer loyal exactly on the last one."""
    return [i * gap for i in range(th.loyal_min_purchases)]


# --------------------------------------------------------------------------- transitions


def test_first_event_makes_a_prospect():
    """Any first touchpoint creates the customer as a prospect, caused by that event, at its time."""
    out = apply_event(None, event("e1", 0), TH)
    assert not out.duplicate
    [change] = out.changes
    assert change.customer_id == CUSTOMER
    assert change.dimension == "lifecycle"
    assert change.from_ is None and change.to == "prospect"
    assert change.reason.rule == "lifecycle.prospect"
    assert change.reason.evidence == {"purchases": 0, "events_seen": 1}
    assert change.caused_by == "e1"
    assert change.at == at(0)
    assert out.state.lifecycle == "prospect"
    assert out.state.lifecycle_since == ts(0)


def test_first_purchase_after_browsing_makes_new():
    """A prospect's first purchase makes them new; the evidence names the loyal threshold and the spend."""
    assert TH.loyal_min_purchases > 1
    state, outs = run([event("e1", 0), event("e2", 1, Touchpoint.PRODUCT_VIEW), purchase("e3", 2, amount=42.5)])
    assert outs[1].changes == []
    [change] = outs[2].changes
    assert (change.from_, change.to) == ("prospect", "new")
    assert change.reason.rule == "lifecycle.new"
    assert change.reason.evidence == {
        "purchases": 1, "min_purchases_for_loyal": TH.loyal_min_purchases, "total_spend": 42.5,
    }
    assert change.caused_by == "e3" and change.at == at(2)
    assert state.lifecycle == "new"


def test_purchase_as_very_first_event_makes_new_directly():
    """A customer first seen buying goes straight from nothing to new."""
    out = apply_event(None, purchase("e1", 0), TH)
    assert [(c.from_, c.to) for c in out.changes] == [(None, "new")]


def test_nth_purchase_makes_loyal():
    """The purchase that reaches Thresholds.loyal_min_purchases (and only that one) makes the customer loyal."""
    gap = 10
    days = loyal_days(gap)
    state, outs = buyer(days)
    for out in outs[1:-1]:
        assert out.changes == [], "purchases below the loyal threshold keep the customer new"
    [change] = outs[-1].changes
    assert (change.from_, change.to) == ("new", "loyal")
    assert change.reason.rule == "lifecycle.loyal"
    assert change.reason.evidence == {
        "purchases": TH.loyal_min_purchases,
        "min_purchases": TH.loyal_min_purchases,
        "days_without_purchase": 0,
        "threshold_days": expected_quiet_days(days),
    }
    assert change.caused_by == f"p{len(days) - 1}"
    assert state.lifecycle == "loyal"


def test_loyal_min_purchases_is_honoured():
    """A custom loyal threshold moves the loyal step to that purchase."""
    th = Thresholds(loyal_min_purchases=5)
    state, outs = buyer([0, 5, 10, 15, 20], th)
    assert [[(c.from_, c.to) for c in o.changes] for o in outs] == [
        [(None, "new")], [], [], [], [("new", "loyal")],
    ]


def test_new_goes_at_risk_through_advance_with_no_event():
    """A single-purchase customer becomes at risk when the clock passes their due time, with the at-risk evidence."""
    state, _ = buyer([0])
    quiet = expected_quiet_days([0])
    out = advance(state, ts(quiet + 3), TH)
    [change] = out.changes
    assert (change.from_, change.to) == ("new", "at_risk")
    assert change.reason.rule == "lifecycle.at_risk"
    assert change.reason.evidence == {
        "last_purchase_at": iso_z(ts(0)),
        "days_without_purchase": quiet,
        "threshold_days": quiet,
        "rhythm_days": None,
        "rhythm_multiple": TH.at_risk_rhythm_multiple,
        "floor_days": TH.at_risk_floor_days,
    }
    assert out.state.lifecycle == "at_risk"
    assert out.state.lifecycle_since == ts(quiet)


def test_loyal_goes_at_risk_through_advance_with_no_event():
    """A loyal customer goes at risk after the quiet period; the evidence reports their rhythm."""
    gap = 20
    days = loyal_days(gap)
    state, _ = buyer(days)
    assert state.lifecycle == "loyal"
    quiet = expected_quiet_days(days)
    out = advance(state, ts(days[-1] + quiet), TH)
    [change] = out.changes
    assert (change.from_, change.to) == ("loyal", "at_risk")
    assert change.reason.evidence["rhythm_days"] == gap
    assert change.reason.evidence["threshold_days"] == quiet
    assert change.reason.evidence["last_purchase_at"] == iso_z(ts(days[-1]))


def test_at_risk_loyal_customer_comes_back_as_loyal_on_a_purchase():
    """The comeback: a purchase moves an at-risk customer with enough purchases back to loyal."""
    days = loyal_days(10)
    state, _ = buyer(days)
    quiet = expected_quiet_days(days)
    state = advance(state, ts(days[-1] + quiet + 1), TH).state
    assert state.lifecycle == "at_risk"
    out = apply_event(state, purchase("back", days[-1] + quiet + 2), TH)
    [change] = out.changes
    assert (change.from_, change.to) == ("at_risk", "loyal")
    assert change.reason.rule == "lifecycle.loyal"
    assert change.caused_by == "back"
    assert change.reason.evidence["purchases"] == TH.loyal_min_purchases + 1


def test_at_risk_single_buyer_comes_back_as_new_on_a_purchase():
    """The comeback below the loyal threshold: at risk -> new."""
    assert TH.loyal_min_purchases > 2
    state, _ = buyer([0])
    quiet = expected_quiet_days([0])
    state = advance(state, ts(quiet), TH).state
    assert state.lifecycle == "at_risk"
    out = apply_event(state, purchase("back", quiet + 5), TH)
    assert [(c.from_, c.to, c.reason.rule) for c in out.changes] == [("at_risk", "new", "lifecycle.new")]


@pytest.mark.parametrize("kind", [Touchpoint.PAGE_VIEW, Touchpoint.EMAIL_OPEN, Touchpoint.ADD_TO_CART,
                                  Touchpoint.RETURN, Touchpoint.SUBSCRIPTION_CANCELLED])
def test_non_purchase_event_does_not_change_the_type(kind):
    """Prospect, new, loyal and at-risk customers keep their type on a (timely) non-purchase touchpoint."""
    payload = OrderPayload(amount=10, currency="EUR") if kind is Touchpoint.RETURN else None
    prospect, _ = run([event("e0", 0)])
    new, _ = buyer([0])
    days = loyal_days(10)
    loyal, _ = buyer(days)
    due = days[-1] + expected_quiet_days(days)
    at_risk = advance(loyal, ts(due), TH).state
    cases = [(prospect, 5), (new, 1), (loyal, days[-1] + 1), (at_risk, due + 1)]
    assert [s.lifecycle for s, _ in cases] == ["prospect", "new", "loyal", "at_risk"]
    for state, day in cases:
        out = apply_event(state, event("x", day, kind, payload=payload), TH)
        assert out.changes == [] and out.actions == [], state.lifecycle
        assert out.state.lifecycle == state.lifecycle
        assert out.state.purchases == state.purchases


def test_late_non_purchase_event_does_not_undo_at_risk():
    """A customer made at risk by the clock stays at risk when a non-purchase event that happened
    shortly before the due time arrives after the sweep (normal lag with the wall clock).

    Only a purchase brings an at-risk customer back (README, "Lifecycle rules"); the time without a
    purchase is still past the threshold.
    """
    days = loyal_days(10)
    loyal, _ = buyer(days)
    due = days[-1] + expected_quiet_days(days)
    swept = advance(loyal, ts(due) + 60, TH)  # the wall-clock sweep, a minute after the due time
    assert swept.state.lifecycle == "at_risk"
    late = apply_event(swept.state, event("late-visit", due - 0.5), TH)  # happened 12 h before the due time
    assert [(c.from_, c.to) for c in late.changes] == []
    assert late.state.lifecycle == "at_risk"


# --------------------------------------------------------------------------- rules, directly on a state


def _state(purchases: int, first_day: float | None, last_day: float | None) -> CustomerState:
    return CustomerState(
        customer_id="s", first_seen=0.0, last_seen=ts(last_day or 0), purchases=purchases,
        first_purchase_at=None if first_day is None else ts(first_day),
        last_purchase_at=None if last_day is None else ts(last_day),
    )


def test_classify_precedence_at_risk_beats_loyal():
    """A customer with many purchases but quiet for too long is at risk, not loyal (rule 2 before rule 3)."""
    st = _state(10, 0, 90)  # rhythm 10 days
    quiet = max(TH.at_risk_floor_days, TH.at_risk_rhythm_multiple * 10)
    assert lifecycle.classify(st, ts(90 + quiet - 1), TH)[0] == "loyal"
    assert lifecycle.classify(st, ts(90 + quiet), TH)[0] == "at_risk"
    assert lifecycle.classify(_state(0, None, None), ts(500), TH)[0] == "prospect"
    assert lifecycle.classify(_state(1, 0, 0), ts(1), TH)[0] == "new"


@pytest.mark.parametrize("purchases,first,last", [(0, None, None), (1, 0, 0), (2, 0, 4), (3, 0, 6), (7, 0, 120)])
def test_lifecycle_type_agrees_with_classify(purchases, first, last):
    """The cheap per-event check and the explained classification never disagree."""
    st = _state(purchases, first, last)
    for day in [0, 1, 10, 29.99, 30, 31, 59, 60, 89.99, 90, 91, 200, 500]:
        now = ts((last or 0) + day)
        assert lifecycle.lifecycle_type(st, now, TH) == lifecycle.classify(st, now, TH)[0], day


# --------------------------------------------------------------------------- at-risk timing


def test_short_rhythm_gets_the_floor():
    """A frequent buyer (multiple x rhythm below the floor) is at risk only after the floor."""
    gap = 2
    assert TH.at_risk_rhythm_multiple * gap < TH.at_risk_floor_days
    days = loyal_days(gap)
    state, _ = buyer(days)
    assert lifecycle.quiet_period(state, TH) == TH.at_risk_floor_days * DAY
    assert next_due(state, TH) == ts(days[-1]) + TH.at_risk_floor_days * DAY


def test_long_rhythm_gets_the_multiple_of_the_mean_interval():
    """A slow buyer (multiple x rhythm above the floor) gets multiple x their mean interval."""
    gap = 25
    assert TH.at_risk_rhythm_multiple * gap > TH.at_risk_floor_days
    days = loyal_days(gap)
    state, _ = buyer(days)
    assert state.mean_purchase_interval == gap * DAY
    assert lifecycle.quiet_period(state, TH) == TH.at_risk_rhythm_multiple * gap * DAY
    assert lifecycle.at_risk_due(state, TH) == ts(days[-1]) + TH.at_risk_rhythm_multiple * gap * DAY


def test_single_purchase_uses_first_rhythm_days():
    """With one purchase there is no interval yet: the rhythm is first_rhythm_days."""
    state, _ = buyer([0])
    assert state.mean_purchase_interval is None
    expected = max(TH.at_risk_floor_days, TH.at_risk_rhythm_multiple * TH.first_rhythm_days) * DAY
    assert lifecycle.quiet_period(state, TH) == expected
    th = Thresholds(first_rhythm_days=50, at_risk_rhythm_multiple=2, at_risk_floor_days=1)
    assert lifecycle.quiet_period(state, th) == 100 * DAY


def test_nothing_is_due_for_prospects_or_at_risk_customers():
    """Only new and loyal customers are watched for inactivity."""
    prospect, _ = run([event("e", 0)])
    assert next_due(prospect, TH) is None and lifecycle.at_risk_due(prospect, TH) is None
    new, _ = buyer([0])
    at_risk = advance(new, ts(1000), TH).state
    assert at_risk.lifecycle == "at_risk"
    assert next_due(at_risk, TH) is None
    assert advance(at_risk, ts(5000), TH).changes == []


def test_advance_one_second_before_due_changes_nothing_and_at_due_changes():
    """The boundary: due - 1 s leaves the customer alone; exactly the due time makes them at risk."""
    days = loyal_days(10)
    state, _ = buyer(days)
    due = ts(days[-1]) + expected_quiet_days(days) * DAY
    assert next_due(state, TH) == due
    before = advance(state, due - 1, TH)
    assert before.changes == [] and before.actions == []
    assert before.state.as_dict() == state.as_dict()
    on_time = advance(state, due, TH)
    assert [(c.from_, c.to) for c in on_time.changes] == [("loyal", "at_risk")]


def test_inactivity_change_is_stamped_at_the_due_time_not_now():
    """A late sweep still says `inactivity@<due>` and `at` = due, so outputs do not depend on sweep timing."""
    state, _ = buyer([0])
    due = ts(expected_quiet_days([0]))
    late = advance(state, due + 17 * DAY + 3600, TH)
    prompt = advance(state, due, TH)
    [change] = late.changes
    assert change.caused_by == f"inactivity@{iso_z(due)}"
    assert change.at == datetime.fromtimestamp(due, UTC)
    assert late.state.lifecycle_since == due
    assert [a.at for a in late.actions] == [change.at]
    assert late.changes == prompt.changes
    assert late.actions == prompt.actions


def test_event_after_due_first_emits_the_overdue_change():
    """A purchase arriving after the due time: first loyal -> at_risk at the due time, then at_risk -> loyal at the event."""
    days = loyal_days(10)
    state, _ = buyer(days)
    due = ts(days[-1]) + expected_quiet_days(days) * DAY
    event_day = days[-1] + expected_quiet_days(days) + 4
    out = apply_event(state, purchase("late", event_day), TH)
    assert [(c.from_, c.to) for c in out.changes] == [("loyal", "at_risk"), ("at_risk", "loyal")]
    overdue, own = out.changes
    assert overdue.caused_by == f"inactivity@{iso_z(due)}" and overdue.at == datetime.fromtimestamp(due, UTC)
    assert own.caused_by == "late" and own.at == at(event_day)
    # the overdue change is exactly what a sweep at the due time would have produced
    assert overdue == advance(state, due, TH).changes[0]


def test_non_purchase_event_after_due_emits_only_the_overdue_change():
    """A page view after the due time makes the customer at risk (stamped at the due time) and nothing else."""
    state, _ = buyer([0])
    due = ts(expected_quiet_days([0]))
    out = apply_event(state, event("visit", expected_quiet_days([0]) + 10), TH)
    assert [(c.from_, c.to, c.caused_by) for c in out.changes] == [("new", "at_risk", f"inactivity@{iso_z(due)}")]
    assert out.state.lifecycle == "at_risk"


def test_custom_thresholds_change_the_timing():
    """Thresholds are inputs: a different floor / multiple / first rhythm moves the due time."""
    th = Thresholds(at_risk_floor_days=7, at_risk_rhythm_multiple=2, first_rhythm_days=5, loyal_min_purchases=2)
    state, outs = buyer([0], th)
    due = ts(10)  # max(7, 2 x 5)
    assert next_due(state, th) == due
    assert advance(state, due - 1, th).changes == []
    assert [c.to for c in advance(state, due, th).changes] == ["at_risk"]
    # the default thresholds would wait much longer
    assert next_due(state, TH) == ts(expected_quiet_days([0]))
    assert advance(state, due, TH).changes == []
    # the floor dominates when it is the larger
    th_floor = Thresholds(at_risk_floor_days=100, at_risk_rhythm_multiple=2, first_rhythm_days=5)
    assert next_due(state, th_floor) == ts(100)
    # the second purchase makes them loyal under loyal_min_purchases=2
    state2, outs2 = run([purchase("p1", 3)], th, state)
    assert [(c.from_, c.to) for c in outs2[0].changes] == [("new", "loyal")]
    assert next_due(state2, th) == ts(3) + max(7, 2 * 3) * DAY


# --------------------------------------------------------------------------- idempotence


def test_same_event_twice_is_a_duplicate():
    """A re-sent event (same event_id) changes nothing and emits nothing."""
    state, _ = run([event("e0", 0), purchase("e1", 1)])
    before = state.as_dict()
    out = apply_event(state, purchase("e1", 1), TH)
    assert out.duplicate is True
    assert out.changes == [] and out.actions == [] and out.suppressed == []
    assert out.state.as_dict() == before
    assert out.state.purchases == 1


def test_duplicate_is_recognised_by_event_id_even_with_other_content():
    """The event_id alone identifies a re-sent event."""
    state, _ = run([purchase("e1", 1)])
    out = apply_event(state, event("e1", 5, Touchpoint.EMAIL_OPEN), TH)
    assert out.duplicate and out.state.as_dict() == state.as_dict()


def test_dedupe_window_keeps_only_the_last_fingerprints():
    """Only the last `dedupe_window` event ids are remembered; older ones are applied again."""
    th = Thresholds(dedupe_window=3)
    state, _ = run([event(f"e{i}", i) for i in range(5)], th)
    assert state.recent_events == [ids.event_fingerprint(f"e{i}") for i in (2, 3, 4)]
    assert apply_event(state, event("e3", 3), th).duplicate
    again = apply_event(state, event("e0", 0), th)
    assert not again.duplicate
    assert again.state.counts["page_view"] == 6
    assert len(again.state.recent_events) == 3


def test_default_dedupe_window_length():
    """With the default window, the state holds exactly `dedupe_window` fingerprints after many events."""
    n = TH.dedupe_window + 10
    state, _ = run([event(f"e{i}", i / 10) for i in range(n)])
    assert len(state.recent_events) == TH.dedupe_window
    assert state.recent_events[-1] == ids.event_fingerprint(f"e{n - 1}")
    assert state.recent_events[0] == ids.event_fingerprint(f"e{n - TH.dedupe_window}")


# --------------------------------------------------------------------------- purity


def _rich_state() -> CustomerState:
    """A state with every container filled, so a shallow mutation would show."""
    state, _ = run([
        event("a", 0, country="PT", language="pt-PT"),
        purchase("b", 1, coupon="SAVE10"),
        event("c", 2, Touchpoint.SURVEY_RESPONSE, payload=ScorePayload(csat=3, nps=7)),
        event("d", 3, Touchpoint.SUPPORT_TICKET, payload=SupportPayload(sentiment=-0.5)),
        purchase("e", 10),
        purchase("f", 20),
    ])
    state.traits["demo"] = ts(1)
    return state


def test_apply_event_does_not_mutate_its_input():
    """apply_event works on a copy: the caller's state (and its dicts/lists) are untouched."""
    state = _rich_state()
    before = state.as_dict()
    out = apply_event(state, event("g", 200, Touchpoint.SURVEY_RESPONSE, country="BR",
                                   payload=ScorePayload(csat=1, rating=2, sentiment=-1)), TH)
    assert out.changes, "the event should cause the overdue at-risk change"
    assert out.state is not state
    assert state.as_dict() == before


def test_advance_does_not_mutate_its_input():
    """advance works on a copy."""
    state = _rich_state()
    before = state.as_dict()
    out = advance(state, ts(500), TH)
    assert out.changes and out.state is not state
    assert state.as_dict() == before


# --------------------------------------------------------------------------- determinism and ids


def _journey_events():
    return [event("v1", 0), purchase("b1", 1), purchase("b2", 11), purchase("b3", 21),
            event("v2", 80), purchase("b4", 85), event("v3", 300)]


def test_ids_are_the_same_across_independent_runs():
    """Two independent runs of the same events give identical change and action ids."""
    _, first = run(_journey_events())
    _, second = run(_journey_events())
    ids1 = [c.change_id for c in all_changes(first)], [a.action_id for a in all_actions(first)]
    ids2 = [c.change_id for c in all_changes(second)], [a.action_id for a in all_actions(second)]
    assert ids1 == ids2
    assert len(set(ids1[0])) == len(ids1[0]) and len(set(ids1[1])) == len(ids1[1])
    assert all_changes(first) == all_changes(second)


def test_ids_differ_for_different_causes_and_customers():
    """The same kind of change caused by another event, or for another customer, gets another id."""
    a = apply_event(None, event("e1", 0), TH).changes[0]
    b = apply_event(None, event("e2", 0), TH).changes[0]
    c = apply_event(None, event("e1", 0, customer="cust-2"), TH).changes[0]
    assert len({a.change_id, b.change_id, c.change_id}) == 3
    act = [apply_event(None, event(e, 0), TH).actions[0].action_id for e in ("e1", "e2")]
    assert act[0] != act[1]


def test_change_and_action_ids_are_the_documented_functions():
    """change_id / action_id are computed by streams.core.ids from (customer, dimension, from, to, cause)."""
    out = apply_event(None, purchase("e1", 0), TH)
    [change] = out.changes
    assert change.change_id == ids.change_id(CUSTOMER, "lifecycle", None, "new", "e1")
    [action] = out.actions
    assert action.action_id == ids.action_id(change.change_id, "welcome_onboarding")


def test_ids_module_is_deterministic_and_sensitive_to_every_input():
    """Each id function returns the same value for the same input and a different one when any part differs."""
    base = ("c", "lifecycle", "new", "loyal", "e1")
    assert ids.change_id(*base) == ids.change_id(*base)
    assert ids.change_id(*base).startswith("chg_")
    for i in range(len(base)):
        varied = list(base)
        varied[i] = (varied[i] or "") + "x"
        assert ids.change_id(*varied) != ids.change_id(*base), i
    assert ids.action_id("chg_1", "a") == ids.action_id("chg_1", "a")
    assert ids.action_id("chg_1", "a").startswith("act_")
    assert ids.action_id("chg_1", "a") != ids.action_id("chg_1", "b")
    assert ids.action_id("chg_1", "a") != ids.action_id("chg_2", "a")
    assert ids.event_fingerprint("e1") == ids.event_fingerprint("e1") != ids.event_fingerprint("e2")
    # the separator keeps part boundaries: ("ab", "c") is not ("a", "bc")
    assert ids.change_id("ab", "c", None, None, "x") != ids.change_id("a", "bc", None, None, "x")


# --------------------------------------------------------------------------- playbook


def test_every_change_emits_its_playbook_actions():
    """Each lifecycle change emits the playbook's actions for the new type, triggered by that change."""
    _, outs = run(_journey_events())
    changes = all_changes(outs)
    assert {c.to for c in changes} == {"prospect", "new", "loyal", "at_risk"}
    for out in outs:
        by_change = {c.change_id: c for c in out.changes}
        for action in out.actions:
            change = by_change[action.triggered_by]
            [spec] = [s for s in DEFAULT_PLAYBOOK[change.to] if s.action == action.action]
            assert action.channel == spec.channel and action.priority == spec.priority
            assert action.customer_id == CUSTOMER
            assert action.at == change.at
            assert action.params == {**spec.params, "lifecycle": change.to, "rule": change.reason.rule}
    first = [(c.to, [a.action for a in o.actions if a.triggered_by == c.change_id])
             for o in outs for c in o.changes]
    assert first[:4] == [
        ("prospect", ["lead_nurture_sequence"]),
        ("new", ["welcome_onboarding"]),
        ("loyal", ["loyalty_programme_invite"]),
        ("at_risk", ["win_back_offer"]),
    ]


def test_playbook_matches_the_readme():
    """prospect -> lead nurture (14 d), new -> welcome (30 d), loyal -> loyalty invite (90 d), at_risk -> win-back (30 d)."""
    assert {k: [(s.action, s.cooldown_s / DAY) for s in v] for k, v in DEFAULT_PLAYBOOK.items()} == {
        "prospect": [("lead_nurture_sequence", 14)],
        "new": [("welcome_onboarding", 30)],
        "loyal": [("loyalty_programme_invite", 90)],
        "at_risk": [("win_back_offer", 30)],
    }


def test_cooldown_suppresses_a_repeated_loyalty_invite_and_allows_it_later():
    """loyal -> at_risk -> loyal within 90 days: no second invite (counted); after the cooldown it is sent again."""
    invite = DEFAULT_PLAYBOOK["loyal"][0]
    days = [0, 10, 20]
    th = Thresholds(loyal_min_purchases=3)
    state, outs = buyer(days, th)
    assert [a.action for a in outs[-1].actions] == ["loyalty_programme_invite"]
    due1 = 20 + expected_quiet_days(days, th)  # day 50
    assert due1 == 50

    # comeback on day 60: 40 days after the invite, inside its cooldown
    assert (60 - 20) * DAY < invite.cooldown_s
    out = apply_event(state, purchase("p3", 60), th)
    assert [(c.from_, c.to) for c in out.changes] == [("loyal", "at_risk"), ("at_risk", "loyal")]
    assert [a.action for a in out.actions] == ["win_back_offer"]
    assert out.suppressed == ["loyalty_programme_invite"]
    assert out.state.actions_suppressed == state.actions_suppressed + 1
    assert out.state.actions_sent["loyalty_programme_invite"] == ts(20), "a suppressed action is not recorded as sent"
    state = out.state

    # four purchases over 60 days: rhythm 20 -> quiet 60 -> at risk on day 120; comeback on day 130
    due2 = 60 + expected_quiet_days(days + [60], th)
    assert due2 == 120
    assert (130 - 20) * DAY >= invite.cooldown_s
    out = apply_event(state, purchase("p4", 130), th)
    assert [(c.from_, c.to) for c in out.changes] == [("loyal", "at_risk"), ("at_risk", "loyal")]
    assert [a.action for a in out.actions] == ["win_back_offer", "loyalty_programme_invite"]
    assert out.suppressed == []
    assert out.state.actions_suppressed == 1
    assert out.state.actions_sent == {
        "welcome_onboarding": ts(0), "loyalty_programme_invite": ts(130), "win_back_offer": ts(120),
    }


def test_cooldown_of_a_custom_playbook():
    """The playbook is an input: a custom action with a 100-day cooldown is suppressed at 99 days and sent at 100."""
    spec = ActionSpec("ping", "sms", DEFAULT_PLAYBOOK["new"][0].priority, 100 * DAY)
    playbook = {"new": (spec,), "at_risk": (), "loyal": (), "prospect": ()}
    th = Thresholds(loyal_min_purchases=50, at_risk_floor_days=1, at_risk_rhythm_multiple=1, first_rhythm_days=1)
    # quiet period of a single buyer: 1 day. New on day 0 (ping sent), at risk on day 1, back to new on day 99.
    state, outs = run([purchase("p0", 0)], th, playbook=playbook)
    assert [a.action for a in outs[0].actions] == ["ping"]
    out = apply_event(state, purchase("p1", 99), th, playbook)
    assert [(c.from_, c.to) for c in out.changes] == [("new", "at_risk"), ("at_risk", "new")]
    assert out.actions == [] and out.suppressed == ["ping"]
    # two purchases 99 days apart: quiet 99 days -> at risk on day 198; back on day 199 (199 days after the ping)
    out = apply_event(out.state, purchase("p2", 199), th, playbook)
    assert [a.action for a in out.actions] == ["ping"]
    assert out.state.actions_suppressed == 1


# --------------------------------------------------------------------------- state folding


def test_purchases_spend_coupons_and_rhythm_are_folded():
    """Purchases count, spend adds up, coupon or discount orders count, the mean interval uses first/last purchase."""
    state, _ = run([
        event("v", -1),
        purchase("p0", 0, amount=100.0),
        purchase("p1", 6, amount=50.5, coupon="SAVE10", discount=5),
        purchase("p2", 12, amount=20.0, discount=3.5),
        purchase("p3", 30, amount=29.5),
        event("r", 31, Touchpoint.RETURN, payload=OrderPayload(amount=29.5, currency="EUR")),
    ])
    assert state.purchases == 4, "a return is not a purchase"
    assert state.total_spend == pytest.approx(200.0)
    assert state.average_spend == pytest.approx(50.0)
    assert state.coupon_orders == 2
    assert state.coupon_share == pytest.approx(0.5)
    assert state.first_purchase_at == ts(0) and state.last_purchase_at == ts(30)
    assert state.mean_purchase_interval == pytest.approx(10 * DAY)
    assert state.counts == {"page_view": 1, "purchase": 4, "return": 1}
    assert state.first_seen == ts(-1) and state.last_seen == ts(31)
    assert state.last_by_stage == {"pre_purchase": ts(-1), "purchase": ts(30), "post_purchase": ts(31)}


def test_support_contacts_and_sentiment_mean():
    """Tickets, complaints and pre-sales chats count as support contacts; sentiments average over those that have one."""
    state, _ = run([
        event("s1", 0, Touchpoint.SUPPORT_TICKET, payload=SupportPayload(topic="billing", sentiment=-0.5)),
        event("s2", 1, Touchpoint.COMPLAINT, payload=SupportPayload(sentiment=-1.0, wait_seconds=600)),
        event("s3", 2, Touchpoint.PRESALES_CHAT, payload=SupportPayload(sentiment=0.5)),
        event("s4", 3, Touchpoint.SUPPORT_TICKET),
    ])
    assert state.support_contacts == 4
    assert state.support_sentiment_n == 3
    assert state.mean_support_sentiment == pytest.approx(-1 / 3)


def test_latest_scores_are_kept():
    """Each score keeps its latest value; a survey without a score leaves the earlier one."""
    state, _ = run([
        event("q1", 0, Touchpoint.SURVEY_RESPONSE, payload=ScorePayload(csat=2, nps=5)),
        event("q2", 1, Touchpoint.REVIEW_WRITTEN, payload=ScorePayload(rating=3)),
        event("q3", 2, Touchpoint.SURVEY_RESPONSE, payload=ScorePayload(csat=4, ces=6)),
    ])
    assert state.scores == {"csat": 4, "nps": 5, "rating": 3, "ces": 6}


def test_country_language_and_segment_come_from_events():
    """Locale fields are taken from the events that carry them; events without them keep the earlier values."""
    state, _ = run([
        event("a", 0, country="PT", language="pt-PT", segment="e-commerce"),
        event("b", 1),
    ])
    assert (state.country, state.language, state.segment) == ("PT", "pt-PT", "e-commerce")
    state, _ = run([event("c", 2, country="BR", language="pt-BR")], state=state)
    assert (state.country, state.language, state.segment) == ("BR", "pt-BR", "e-commerce")


# --------------------------------------------------------------------------- out of order


def test_older_event_arriving_later_does_not_move_times_backwards():
    """An older event of the same customer updates first_* times but never last_seen / last_purchase_at."""
    state, _ = run([event("v10", 10), purchase("p20", 20), event("v25", 25)])
    state, outs = run([purchase("p5", 5), event("v3", 3, Touchpoint.AD_CLICK)], state=state)
    assert state.last_seen == ts(25)
    assert state.last_purchase_at == ts(20)
    assert state.first_purchase_at == ts(5)
    assert state.first_seen == ts(3)
    assert state.last_by_stage["purchase"] == ts(20)
    assert state.last_by_stage["pre_purchase"] == ts(25)
    assert state.purchases == 2
    assert state.mean_purchase_interval == 15 * DAY
    assert next_due(state, TH) == ts(20) + expected_quiet_days([5, 20]) * DAY
    assert all(o.changes == [] for o in outs), "the old purchase does not re-make the customer new"
