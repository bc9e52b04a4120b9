"""Unit tests of the pure core: lifecycle transitions, inactivity timing, idempotence, purity, ids,
state folding and out-of-order events.

No broker, no Redis: events are built in memory and folded with `apply_event` / `advance`
under `load_model()` (the shipped rules and playbook), or under a copy of the shipped rules
with other thresholds written to tmp_path. Expected values are computed from the inputs and
the thresholds of the rules file, never copied from the code's output.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from timeline import Timeline, iso_z

from schemas import (
    CONSENT_KINDS,
    STAGE_OF,
    ConsentChannel,
    ConsentPayload,
    OrderPayload,
    ScorePayload,
    SupportPayload,
    Touchpoint,
    TouchpointEvent,
)
from streams.core import CustomerState, Outcome, advance, apply_event, ids, next_due
from streams.core.engine import (
    _fold,  # the fold alone, for the signal-consistency check
)
from streams.core.model import Model, load_model
from streams.core.rules.compiled import DEFAULT_RULES
from streams.core.rules.signals import CATALOGUE

MODEL = load_model()
DAY = 86_400.0
T0 = datetime(2026, 1, 1, tzinfo=UTC)
CUSTOMER = "cust-1"

# The thresholds of the shipped rules (checked against the file by the first test).
LOYAL_MIN = 3  # purchases
FIRST_RHYTHM = 30  # days, until a second purchase
AT_RISK_TIMES, AT_RISK_FLOOR = 3, 30  # quiet >= max(30, 3 x rhythm)
LAPSED_TIMES, LAPSED_FLOOR = 6, 180  # quiet >= max(180, 6 x rhythm)
AT_RISK_QUIET = "{signal: days_since_last_purchase, gte: {signal: purchase_rhythm_days, times: 3, floor: 30}}"


# --------------------------------------------------------------------------- helpers


at, ts = Timeline(T0).at, Timeline(T0).ts


def event(
    eid: str,
    day: float,
    touchpoint: Touchpoint | str = Touchpoint.PAGE_VIEW,
    customer: str = CUSTOMER,
    payload=None,
    channel: str = "web",
    **extra,
) -> TouchpointEvent:
    tp = Touchpoint(touchpoint)
    extra.setdefault("country", "PT")
    extra.setdefault("language", "pt-PT")
    return TouchpointEvent(
        event_id=eid,
        customer_id=customer,
        occurred_at=at(day),
        stage=STAGE_OF[tp],
        touchpoint=tp,
        channel=channel,
        payload=payload,
        **extra,
    )


def purchase(eid: str, day: float, amount: float = 100.0, customer: str = CUSTOMER, **order) -> TouchpointEvent:
    return event(
        eid, day, Touchpoint.PURCHASE, customer=customer, payload=OrderPayload(amount=amount, currency="EUR", **order)
    )


def run(events, model: Model = MODEL, state: CustomerState | None = None):
    """Fold events in the given order; returns the final state and every outcome."""
    outcomes: list[Outcome] = []
    for ev in events:
        out = apply_event(state, ev, model)
        outcomes.append(out)
        state = out.state
    return state, outcomes


def lifecycle_changes(outcomes):
    return [c for o in outcomes for c in o.changes if c.dimension == "lifecycle"]


def moves(changes):
    return [(c.from_, c.to) for c in changes if c.dimension == "lifecycle"]


def buyer(days, model: Model = MODEL, prefix: str = "p"):
    """A customer who bought on each of `days` (in order); returns the final state and outcomes."""
    return run([purchase(f"{prefix}{i}", d) for i, d in enumerate(days)], model)


def rhythm(purchase_days) -> float:
    """Mean days between purchases; first_rhythm_days until there are two."""
    if len(purchase_days) < 2:
        return FIRST_RHYTHM
    return (purchase_days[-1] - purchase_days[0]) / (len(purchase_days) - 1)


def quiet_days(purchase_days) -> float:
    """Days without a purchase after which the customer is at risk: max(30, 3 x rhythm)."""
    return max(AT_RISK_FLOOR, AT_RISK_TIMES * rhythm(purchase_days))


def lapsed_days(purchase_days) -> float:
    return max(LAPSED_FLOOR, LAPSED_TIMES * rhythm(purchase_days))


def loyal_days(gap: float) -> list[float]:
    """Purchase days that make a customer loyal exactly on the last one."""
    return [i * gap for i in range(LOYAL_MIN)]


def rules_copy(tmp_path: Path, name: str, *edits: tuple[str, str]) -> Path:
    """A copy of the shipped rules with each `old` text (present exactly once) replaced by `new`."""
    text = DEFAULT_RULES.read_text()
    for old, new in edits:
        assert text.count(old) == 1, f"the shipped rules changed: {old!r}"
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- the thresholds used here


def test_the_thresholds_used_here_are_those_of_the_shipped_rules():
    spec = yaml.safe_load(DEFAULT_RULES.read_text())
    assert spec["settings"]["first_rhythm_days"] == FIRST_RHYTHM
    rules = {r["type"]: r["when"] for r in spec["lifecycle"]}
    assert rules["loyal"] == {"signal": "purchases", "gte": LOYAL_MIN}
    quiet = {
        "signal": "days_since_last_purchase",
        "gte": {"signal": "purchase_rhythm_days", "times": AT_RISK_TIMES, "floor": AT_RISK_FLOOR},
    }
    assert quiet in rules["at_risk"]["any"][0]["all"]
    lapsed = {
        "signal": "days_since_last_purchase",
        "gte": {"signal": "purchase_rhythm_days", "times": LAPSED_TIMES, "floor": LAPSED_FLOOR},
    }
    assert lapsed in rules["lapsed"]["all"]
    assert [r["type"] for r in spec["lifecycle"]] == [
        "lapsed",
        "at_risk",
        "advocate",
        "loyal",
        "new",
        "free_user",
        "prospect",
    ]


# --------------------------------------------------------------------------- transitions


def test_first_event_makes_a_prospect():
    """Any first touchpoint creates the customer as a prospect, caused by that event, at its time."""
    out = apply_event(None, event("e1", 0), MODEL)
    assert not out.duplicate
    [change] = out.changes
    assert change.customer_id == CUSTOMER
    assert change.dimension == "lifecycle"
    assert change.from_ is None and change.to == "prospect"
    assert change.reason.rule == "lifecycle.prospect"
    assert change.reason.evidence == {}  # `all: []` reads no signal
    assert change.caused_by == "e1"
    assert change.at == at(0)
    assert out.state.lifecycle == "prospect"
    assert out.state.lifecycle_since == ts(0)
    assert [a.action for a in out.actions] == ["lead_nurture_sequence"]
    assert change.model_dump(by_alias=True)["from"] is None


def test_first_purchase_after_browsing_makes_new():
    state, outs = run([event("e1", 0), event("e2", 1, Touchpoint.PRODUCT_VIEW), purchase("e3", 2, amount=42.5)])
    assert lifecycle_changes(outs[1:2]) == []
    [change] = lifecycle_changes(outs[2:])
    assert (change.from_, change.to) == ("prospect", "new")
    assert change.reason.rule == "lifecycle.new"
    assert change.reason.evidence == {"purchases": 1}
    assert change.caused_by == "e3" and change.at == at(2)
    assert state.lifecycle == "new" and state.lifecycle_since == ts(2)
    assert "welcome_onboarding" in [a.action for a in outs[2].actions]


def test_purchase_as_very_first_event_makes_new_directly():
    out = apply_event(None, purchase("e1", 0), MODEL)
    assert moves(out.changes) == [(None, "new")]


def test_free_signup_makes_a_free_user_and_a_purchase_makes_them_new():
    _, outs = run([event("e1", 0), event("e2", 1, Touchpoint.FREE_SIGNUP), purchase("e3", 5)])
    assert [moves(o.changes) for o in outs] == [
        [(None, "prospect")],
        [("prospect", "free_user")],
        [("free_user", "new")],
    ]
    assert lifecycle_changes(outs)[1].reason.evidence == {"free_plan": True}


def test_the_loyal_threshold_purchase_and_only_it_makes_loyal():
    days = loyal_days(10)
    state, outs = buyer(days)
    for out in outs[1:-1]:
        assert lifecycle_changes([out]) == [], "purchases below the loyal threshold keep the customer new"
    [change] = lifecycle_changes(outs[-1:])
    assert (change.from_, change.to) == ("new", "loyal")
    assert change.reason.rule == "lifecycle.loyal"
    assert change.reason.evidence == {"purchases": LOYAL_MIN}
    assert change.caused_by == f"p{len(days) - 1}"
    assert state.lifecycle == "loyal"


def test_a_custom_loyal_threshold_is_honoured(tmp_path):
    model = load_model(
        rules_copy(
            tmp_path, "loyal5.yaml", ("when: {signal: purchases, gte: 3}\n", "when: {signal: purchases, gte: 5}\n")
        )
    )
    _, outs = buyer([0, 5, 10, 15, 20], model)
    assert [moves(o.changes) for o in outs] == [[(None, "new")], [], [], [], [("new", "loyal")]]
    assert lifecycle_changes(outs)[-1].reason.evidence == {"purchases": 5}


def test_advocate_over_loyal():
    """A loyal customer with a promoter NPS is an advocate: the advocate rule comes before loyal."""
    state, outs = run(
        [
            purchase("p0", 0),
            purchase("p1", 10),
            purchase("p2", 20),
            event("s", 21, Touchpoint.SURVEY_RESPONSE, payload=ScorePayload(nps=10)),
        ]
    )
    [change] = lifecycle_changes(outs[3:])
    assert (change.from_, change.to, change.reason.rule) == ("loyal", "advocate", "lifecycle.advocate")
    assert change.reason.evidence == {
        "purchases": 3,
        "latest_nps": 10,
        "count_referral_made": 0,
        "latest_rating": None,
        "negative_reviews": 0,
        "negative_contacts_14d": 0,
    }
    assert state.lifecycle == "advocate"
    # ...and a customer with the same score but fewer purchases is not
    _, outs = run(
        [
            purchase("q0", 0),
            purchase("q1", 10),
            event("t", 21, Touchpoint.SURVEY_RESPONSE, payload=ScorePayload(nps=10)),
        ]
    )
    assert moves(outs[-1].changes) == []


def test_new_goes_at_risk_through_advance_with_no_event():
    """A single buyer (rhythm = first_rhythm_days) is at risk max(30, 3 x 30) = 90 days after the purchase."""
    state, _ = buyer([0])
    quiet = quiet_days([0])
    assert quiet == 90
    out = advance(state, ts(quiet + 3), MODEL)
    [change] = out.changes
    assert (change.from_, change.to) == ("new", "at_risk")
    assert change.reason.rule == "lifecycle.at_risk"
    assert change.reason.evidence == {
        "purchases": 1,
        "days_since_last_purchase": quiet,
        "purchase_rhythm_days": FIRST_RHYTHM,
        "latest_nps": None,
    }
    assert change.caused_by == f"inactivity@{iso_z(ts(quiet))}"
    assert change.at == at(quiet)
    assert out.state.lifecycle == "at_risk"
    assert out.state.lifecycle_since == ts(quiet)
    assert [a.action for a in out.actions] == ["win_back_offer"]


def test_loyal_goes_at_risk_through_advance_with_no_event():
    """A loyal customer is at risk 3 x their rhythm after the last purchase (above the floor)."""
    gap = 20
    days = loyal_days(gap)
    state, _ = buyer(days)
    assert state.lifecycle == "loyal"
    quiet = quiet_days(days)
    assert quiet == 3 * gap
    assert next_due(state) == ts(days[-1] + quiet)
    out = advance(state, ts(days[-1] + quiet), MODEL)
    [change] = out.changes
    assert (change.from_, change.to) == ("loyal", "at_risk")
    assert change.reason.evidence["purchase_rhythm_days"] == gap
    assert change.reason.evidence["days_since_last_purchase"] == quiet


def test_short_rhythm_gets_the_floor():
    gap = 2
    days = loyal_days(gap)
    assert AT_RISK_TIMES * gap < AT_RISK_FLOOR
    state, _ = buyer(days)
    assert next_due(state) == ts(days[-1] + AT_RISK_FLOOR)
    assert advance(state, ts(days[-1] + AT_RISK_FLOOR) - 1, MODEL).changes == []
    assert moves(advance(state, ts(days[-1] + AT_RISK_FLOOR), MODEL).changes) == [("loyal", "at_risk")]


def test_at_risk_then_lapsed_later():
    """After at-risk, the customer lapses when quiet max(180, 6 x rhythm) days: here 6 x 40 = 240."""
    days = [0, 40, 80]
    state, _ = buyer(days)
    assert lapsed_days(days) == 240
    out = advance(state, ts(days[-1] + lapsed_days(days) + 10), MODEL)
    assert moves(out.changes) == [("loyal", "at_risk"), ("at_risk", "lapsed")]
    at_risk, lapsed = lifecycle_changes([out])
    assert at_risk.at == at(days[-1] + quiet_days(days))
    assert lapsed.at == at(days[-1] + lapsed_days(days))
    assert lapsed.reason.rule == "lifecycle.lapsed"
    assert lapsed.reason.evidence == {"purchases": 3, "days_since_last_purchase": 240.0, "purchase_rhythm_days": 40.0}
    assert lapsed.caused_by == f"inactivity@{iso_z(ts(days[-1] + 240))}"
    assert [a.action for a in out.actions if a.triggered_by in (at_risk.change_id, lapsed.change_id)] == [
        "win_back_offer",
        "last_win_back",
    ]
    # a single buyer lapses at the floor
    single, _ = buyer([0], prefix="s")
    out = advance(single, ts(LAPSED_FLOOR), MODEL)
    assert moves(out.changes) == [("new", "at_risk"), ("at_risk", "lapsed")]
    assert advance(single, ts(LAPSED_FLOOR) - 1, MODEL).state.lifecycle == "at_risk"


def test_at_risk_loyal_customer_comes_back_as_loyal_on_a_purchase():
    days = loyal_days(10)
    state, _ = buyer(days)
    due = days[-1] + quiet_days(days)
    state = advance(state, ts(due + 1), MODEL).state
    assert state.lifecycle == "at_risk"
    out = apply_event(state, purchase("back", due + 2), MODEL)
    [change] = out.changes
    assert (change.from_, change.to, change.reason.rule) == ("at_risk", "loyal", "lifecycle.loyal")
    assert change.caused_by == "back"
    assert change.reason.evidence == {"purchases": LOYAL_MIN + 1}


def test_at_risk_single_buyer_comes_back_as_new_on_a_purchase():
    state, _ = buyer([0])
    state = advance(state, ts(quiet_days([0])), MODEL).state
    assert state.lifecycle == "at_risk"
    out = apply_event(state, purchase("back", quiet_days([0]) + 5), MODEL)
    assert [(c.from_, c.to, c.reason.rule) for c in out.changes if c.dimension == "lifecycle"] == [
        ("at_risk", "new", "lifecycle.new")
    ]


def test_lapsed_customers_come_back_on_a_purchase():
    loyal, _ = buyer(loyal_days(10))
    lapsed = advance(loyal, ts(500), MODEL).state
    assert lapsed.lifecycle == "lapsed"
    out = apply_event(lapsed, purchase("back", 501), MODEL)
    assert moves(out.changes) == [("lapsed", "loyal")]
    single, _ = buyer([0], prefix="s")
    lapsed = advance(single, ts(500), MODEL).state
    assert lapsed.lifecycle == "lapsed"
    assert moves(apply_event(lapsed, purchase("back", 501), MODEL).changes) == [("lapsed", "new")]


def test_a_regular_who_turns_detractor_is_at_risk():
    """The second at-risk branch: 3+ purchases and an NPS of 6 or less."""
    _, outs = run(
        [
            purchase("p0", 0),
            purchase("p1", 10),
            purchase("p2", 20),
            event("s", 21, Touchpoint.SURVEY_RESPONSE, payload=ScorePayload(nps=6)),
        ]
    )
    [change] = lifecycle_changes(outs[3:])
    assert (change.from_, change.to) == ("loyal", "at_risk")
    assert change.reason.evidence["latest_nps"] == 6
    assert change.caused_by == "s"


@pytest.mark.parametrize(
    "kind",
    [
        Touchpoint.PAGE_VIEW,
        Touchpoint.EMAIL_OPEN,
        Touchpoint.ADD_TO_CART,
        Touchpoint.RETURN,
        Touchpoint.SUBSCRIPTION_CANCELLED,
    ],
)
def test_non_purchase_event_does_not_change_the_lifecycle_type(kind):
    payload = OrderPayload(amount=10, currency="EUR") if kind is Touchpoint.RETURN else None
    prospect, _ = run([event("e0", 0)])
    new, _ = buyer([0])
    days = loyal_days(10)
    loyal, _ = buyer(days)
    due = days[-1] + quiet_days(days)
    at_risk = advance(loyal, ts(due), MODEL).state
    lapsed = advance(loyal, ts(400), MODEL).state
    cases = [(prospect, 5), (new, 1), (loyal, days[-1] + 1), (at_risk, due + 1), (lapsed, 401)]
    assert [s.lifecycle for s, _ in cases] == ["prospect", "new", "loyal", "at_risk", "lapsed"]
    for state, day in cases:
        out = apply_event(state, event("x", day, kind, payload=payload), MODEL)
        assert lifecycle_changes([out]) == [], state.lifecycle
        assert out.state.lifecycle == state.lifecycle
        assert out.state.purchases == state.purchases


def test_late_non_purchase_event_does_not_undo_a_clock_made_change():
    """A customer made at risk by the clock stays at risk when a non-purchase event from shortly
    before the due time arrives after the sweep (normal lag against the wall clock)."""
    days = loyal_days(10)
    loyal, _ = buyer(days)
    due = days[-1] + quiet_days(days)
    swept = advance(loyal, ts(due) + 60, MODEL)  # the sweep, a minute after the due time
    assert swept.state.lifecycle == "at_risk"
    late = apply_event(swept.state, event("late-visit", due - 0.5), MODEL)  # 12 h before the due time
    assert moves(late.changes) == []
    assert late.state.lifecycle == "at_risk"
    assert late.state.counts["page_view"] == 1, "the late event is still folded in"


# --------------------------------------------------------------------------- at-risk timing


def test_advance_one_second_before_due_changes_nothing_and_at_due_changes():
    days = loyal_days(10)
    state, _ = buyer(days)
    due = ts(days[-1] + quiet_days(days))
    assert next_due(state) == due
    before = advance(state, due - 1, MODEL)
    assert before.changes == [] and before.actions == []
    assert before.state.as_dict() == state.as_dict()
    on_time = advance(state, due, MODEL)
    assert moves(on_time.changes) == [("loyal", "at_risk")]
    [change] = on_time.changes
    assert change.caused_by == f"inactivity@{iso_z(due)}"
    assert change.at == datetime.fromtimestamp(due, UTC)


@pytest.mark.parametrize("gap_hours", [264, 246, 241, 253])
def test_the_at_risk_time_is_three_times_the_rhythm_to_the_second(gap_hours):
    """Two purchases `gap_hours` apart: the rhythm is the gap, so the customer is at risk exactly
    3 x gap after the second purchase (above the 30-day floor). Real rhythms are not whole days.

    264 h and 246 h are whole thousandths of a day; 241 h (10.041666... days) and 253 h are not:
    the core rounds the rhythm signal to 3 decimals and uses the rounded value as the threshold,
    so the at-risk time moves by up to 3 x 0.0005 days (about 2 minutes; 6 x for lapsed).
    """
    gap = gap_hours / 24
    state, _ = buyer([0, gap])
    assert quiet_days([0, gap]) == 3 * gap > AT_RISK_FLOOR
    due = ts(gap) + 3 * gap_hours * 3600
    assert next_due(state) == due
    assert advance(state, due - 1, MODEL).changes == []
    out = advance(state, due, MODEL)
    assert moves(out.changes) == [("new", "at_risk")]
    assert out.changes[0].at == datetime.fromtimestamp(due, UTC)


@pytest.mark.parametrize("gap_hours", [242, 245, 248, 385, 400])
def test_a_buyer_whose_rhythm_is_not_whole_days_goes_at_risk_before_lapsing(gap_hours):
    """Two purchases `gap_hours` apart (e.g. 242 h: 10 days and 2 hours): at risk 3 x gap after the
    second purchase, lapsed at max(180, 6 x gap).

    For these gaps, 3 x the rounded rhythm is a float a hair above its 9-decimal rounding
    (3 x 10.083 = 30.249000000000002), while the age compared with it is rounded to 9 decimals:
    at the due time the core computed, `days_since_last_purchase >= threshold` is false, the
    next due time is computed as that same instant (not after it) and dropped, and the customer
    skips at_risk entirely - no win-back offer - and goes straight to lapsed 180 days later.
    """
    gap = gap_hours / 24
    state, _ = buyer([0, gap])
    out = advance(state, ts(gap + lapsed_days([0, gap]) + 1), MODEL)
    assert moves(out.changes) == [("new", "at_risk"), ("at_risk", "lapsed")]
    at_risk = lifecycle_changes([out])[0]
    assert abs(at_risk.at.timestamp() - (ts(gap) + 3 * gap * DAY)) < 300, "within minutes of 3 x rhythm"
    assert "win_back_offer" in [a.action for a in out.actions]


def test_inactivity_change_is_stamped_at_the_due_time_not_now():
    """A late sweep still says `inactivity@<due>` and `at` = due, so outputs do not depend on sweep timing."""
    state, _ = buyer([0])
    due = ts(quiet_days([0]))
    late = advance(state, due + 17 * DAY + 3600, MODEL)
    prompt = advance(state, due, MODEL)
    [change] = late.changes
    assert change.caused_by == f"inactivity@{iso_z(due)}"
    assert change.at == datetime.fromtimestamp(due, UTC)
    assert late.state.lifecycle_since == due
    assert [a.at for a in late.actions] == [change.at]
    assert late.changes == prompt.changes
    assert late.actions == prompt.actions


def test_event_after_due_first_emits_the_overdue_change():
    """A purchase arriving after the due time: first loyal -> at_risk at the due time, then at_risk -> loyal."""
    days = loyal_days(10)
    state, _ = buyer(days)
    due = ts(days[-1] + quiet_days(days))
    event_day = days[-1] + quiet_days(days) + 4
    out = apply_event(state, purchase("late", event_day), MODEL)
    assert moves(out.changes) == [("loyal", "at_risk"), ("at_risk", "loyal")]
    overdue, own = lifecycle_changes([out])
    assert overdue.caused_by == f"inactivity@{iso_z(due)}" and overdue.at == datetime.fromtimestamp(due, UTC)
    assert own.caused_by == "late" and own.at == at(event_day)
    assert overdue == advance(state, due, MODEL).changes[0], "what a sweep at the due time would have produced"
    assert [a.action for a in out.actions] == ["win_back_offer"]  # loyalty invite: 90-day cooldown
    assert [s.action for s in out.suppressed] == ["loyalty_programme_invite"]


def test_non_purchase_event_after_due_emits_only_the_overdue_change():
    state, _ = buyer([0])
    due = ts(quiet_days([0]))
    out = apply_event(state, event("visit", quiet_days([0]) + 10), MODEL)
    assert [(c.from_, c.to, c.caused_by) for c in out.changes] == [("new", "at_risk", f"inactivity@{iso_z(due)}")]
    assert out.state.lifecycle == "at_risk"


def test_next_due_is_none_for_a_browser_and_the_lapse_for_an_at_risk_customer():
    prospect, _ = run([event("e", 0)])
    assert next_due(prospect) is None
    assert advance(prospect, ts(5000), MODEL).changes == []
    new, _ = buyer([0])
    at_risk = advance(new, ts(quiet_days([0])), MODEL).state
    assert at_risk.lifecycle == "at_risk"
    assert next_due(at_risk) == ts(lapsed_days([0]))


def test_custom_thresholds_change_the_timing(tmp_path):
    """Thresholds are inputs: a different floor / multiple / first rhythm moves the due time."""
    path = rules_copy(
        tmp_path,
        "fast.yaml",
        ("first_rhythm_days: 30", "first_rhythm_days: 5"),
        (AT_RISK_QUIET, AT_RISK_QUIET.replace("times: 3, floor: 30", "times: 2, floor: 7")),
    )
    fast = load_model(path)
    state, _ = buyer([0], fast)
    due = ts(10)  # max(7, 2 x 5)
    assert next_due(state) == due
    assert advance(state, due - 1, fast).changes == []
    assert moves(advance(state, due, fast).changes) == [("new", "at_risk")]
    # the shipped rules wait much longer for the same customer
    default_state, _ = buyer([0])
    assert next_due(default_state) == ts(quiet_days([0]))
    # a second purchase: rhythm 3 days, so the floor of 7 days decides
    state2, _ = run([purchase("p1", 3)], fast, state)
    assert next_due(state2) == ts(3 + max(7, 2 * 3))


# --------------------------------------------------------------------------- idempotence


def test_same_event_twice_is_a_duplicate():
    state, _ = run([event("e0", 0), purchase("e1", 1)])
    before = state.as_dict()
    out = apply_event(state, purchase("e1", 1), MODEL)
    assert out.duplicate is True
    assert out.changes == [] and out.actions == [] and out.suppressed == []
    assert out.state.as_dict() == before
    assert out.state.purchases == 1


def test_an_event_id_reused_with_other_content_is_refused_as_a_conflict():
    """Not a duplicate to drop quietly: the core refuses it (for the dead-letter topic), touching nothing."""
    state, _ = run([purchase("e1", 1)])
    before = state.as_dict()
    out = apply_event(state, event("e1", 500, Touchpoint.EMAIL_OPEN), MODEL, in_place=True)
    assert not out.duplicate and out.conflict and "conflict" in out.refused
    assert out.state.as_dict() == before
    assert out.changes == [] and out.actions == [], "a refused event does not even let the clock run"


def test_dedupe_window_keeps_only_the_last_event_ids():
    """Only the last `dedupe_window` event ids are remembered; older ones are applied again."""
    model = load_model(dedupe_window=3)
    state, _ = run([event(f"e{i}", i) for i in range(5)], model)
    for i in (2, 3, 4):
        assert apply_event(state, event(f"e{i}", i), model).duplicate, i
        assert state.seen(ids.event_fingerprint(f"e{i}"))
    again = apply_event(state, event("e0", 0), model)
    assert not again.duplicate
    assert again.state.counts["page_view"] == 6
    # e0 is now among the last three, e2 no longer is
    assert apply_event(again.state, event("e0", 0), model).duplicate
    assert not apply_event(again.state, event("e2", 2), model).duplicate
    assert len(again.state.recent_events) == len(state.recent_events), "the record does not grow"


def test_default_dedupe_window_length():
    window = MODEL.dedupe_window
    assert window == 16
    n = window + 10
    state, _ = run([event(f"e{i}", i / 10) for i in range(n)])
    assert apply_event(state, event(f"e{n - 1}", (n - 1) / 10), MODEL).duplicate
    assert apply_event(state, event(f"e{n - window}", (n - window) / 10), MODEL).duplicate
    assert not apply_event(state, event(f"e{n - window - 1}", (n - window - 1) / 10), MODEL).duplicate
    more, _ = run([event(f"f{i}", 10 + i) for i in range(window)], state=state)
    assert len(more.recent_events) == len(state.recent_events), "at most `dedupe_window` ids are kept"
    assert len(more.recent_contents) == len(state.recent_contents) == window * ids.CONTENT_CHARS


# --------------------------------------------------------------------------- purity


def _rich_state() -> CustomerState:
    """A state with every container filled, so a shallow mutation would show (a customer from Spain)."""
    abroad = {"country": "ES", "language": "es-ES"}

    def buy(eid, day, **order):
        return event(eid, day, Touchpoint.PURCHASE, payload=OrderPayload(amount=80, currency="EUR", **order), **abroad)

    state, _ = run(
        [
            event("a", 0, Touchpoint.PRODUCT_VIEW, segment="e-commerce", **abroad),
            buy("b", 1, coupon="SAVE10"),
            event("c", 2, Touchpoint.SURVEY_RESPONSE, payload=ScorePayload(csat=3, nps=7), **abroad),
            event("d", 3, Touchpoint.SUPPORT_TICKET, payload=SupportPayload(sentiment=-0.5, topic="how to"), **abroad),
            event("d2", 3.5, Touchpoint.COMPLAINT, channel="phone", **abroad),
            buy("e", 10),
            buy("f", 20),
        ]
    )
    assert state.traits and state.support_log and state.actions_sent and state.marketing_log
    assert state.suppressed_log and state.scores and state.channels == ["web", "phone"]
    return state


def test_apply_event_does_not_mutate_its_input():
    state = _rich_state()
    before = state.as_dict()
    out = apply_event(
        state,
        event("g", 200, Touchpoint.SURVEY_RESPONSE, country="BR", payload=ScorePayload(csat=1, rating=2, sentiment=-1)),
        MODEL,
    )
    assert out.changes, "the event should cause the overdue at-risk change"
    assert out.state is not state
    assert state.as_dict() == before


def test_advance_does_not_mutate_its_input():
    state = _rich_state()
    before = state.as_dict()
    out = advance(state, ts(500), MODEL)
    assert out.changes and out.state is not state
    assert state.as_dict() == before


def test_in_place_changes_the_given_state_and_gives_the_same_outputs():
    copy_event = event("g", 200, Touchpoint.COMPLAINT)
    state = _rich_state()
    pure = apply_event(state, copy_event, MODEL)
    inplace = apply_event(state, copy_event, MODEL, in_place=True)
    assert inplace.state is state
    assert state.as_dict() == pure.state.as_dict()
    assert inplace.changes == pure.changes and inplace.actions == pure.actions
    other = _rich_state()
    pure = advance(other, ts(900), MODEL)
    inplace = advance(other, ts(900), MODEL, in_place=True)
    assert inplace.state is other and other.as_dict() == pure.state.as_dict()
    assert inplace.changes == pure.changes


# --------------------------------------------------------------------------- determinism and ids


def _journey_events():
    return [
        event("v1", 0),
        purchase("b1", 1),
        purchase("b2", 11),
        purchase("b3", 21),
        event("v2", 80),
        purchase("b4", 85),
        event("v3", 300),
    ]


def test_ids_are_the_same_across_independent_runs():
    _, first = run(_journey_events())
    _, second = run(_journey_events())
    changes1 = [c for o in first for c in o.changes]
    changes2 = [c for o in second for c in o.changes]
    actions1 = [a for o in first for a in o.actions]
    actions2 = [a for o in second for a in o.actions]
    assert [c.change_id for c in changes1] == [c.change_id for c in changes2]
    assert [a.action_id for a in actions1] == [a.action_id for a in actions2]
    assert len({c.change_id for c in changes1}) == len(changes1)
    assert len({a.action_id for a in actions1}) == len(actions1)
    assert changes1 == changes2 and actions1 == actions2


def test_ids_differ_for_different_causes_and_customers():
    a = apply_event(None, event("e1", 0), MODEL).changes[0]
    b = apply_event(None, event("e2", 0), MODEL).changes[0]
    c = apply_event(None, event("e1", 0, customer="cust-2"), MODEL).changes[0]
    assert len({a.change_id, b.change_id, c.change_id}) == 3
    act = [apply_event(None, event(e, 0), MODEL).actions[0].action_id for e in ("e1", "e2")]
    assert act[0] != act[1]


def test_change_and_action_ids_are_the_documented_functions():
    out = apply_event(None, purchase("e1", 0), MODEL)
    change = lifecycle_changes([out])[0]
    assert change.change_id == ids.change_id(CUSTOMER, "lifecycle", None, "new", "e1")
    action = next(a for a in out.actions if a.action == "welcome_onboarding")
    assert action.action_id == ids.action_id(change.change_id, "welcome_onboarding")
    assert action.triggered_by == change.change_id
    days = loyal_days(10)
    state, _ = buyer(days)
    due = ts(days[-1] + quiet_days(days))
    [clock] = advance(state, due, MODEL).changes
    assert clock.change_id == ids.change_id(CUSTOMER, "lifecycle", "loyal", "at_risk", f"inactivity@{iso_z(due)}")


def test_ids_module_is_deterministic_and_sensitive_to_every_input():
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
    assert ids.change_id("ab", "c", None, None, "x") != ids.change_id("a", "bc", None, None, "x")


# --------------------------------------------------------------------------- state folding


def test_purchases_spend_coupons_and_rhythm_are_folded():
    state, _ = run(
        [
            event("v", -1),
            purchase("p0", 0, amount=100.0),
            purchase("p1", 6, amount=50.5, coupon="SAVE10", discount=5),
            purchase("p2", 12, amount=20.0, discount=3.5),
            purchase("p3", 30, amount=29.5),
            event("r", 31, Touchpoint.RETURN, payload=OrderPayload(amount=29.5, currency="EUR")),
        ]
    )
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


def test_pre_purchase_counts_and_first_view():
    """pre_buy_*: events (not the purchase), reviews read and cart adds/removes before the first purchase;
    first_view_at: the first product or catalogue view."""
    state, _ = run(
        [
            event("a", 0, Touchpoint.PAGE_VIEW),
            event("b", 1, Touchpoint.REVIEW_READ),
            event("c", 2, Touchpoint.CATALOG_VIEW),
            event("d", 2.5, Touchpoint.PRODUCT_VIEW),
            event("e", 3, Touchpoint.ADD_TO_CART),
            event("f", 3.1, Touchpoint.REMOVE_FROM_CART),
            event("g", 3.2, Touchpoint.REVIEW_READ),
            purchase("h", 4),
            event("i", 5, Touchpoint.REVIEW_READ),
            event("j", 5.5, Touchpoint.ADD_TO_CART),
            event("k", 6, Touchpoint.PRODUCT_VIEW),
        ]
    )
    assert state.pre_buy_events == 7
    assert state.pre_buy_reviews == 2
    assert state.pre_buy_cart_churn == 2
    assert state.first_view_at == ts(2)
    assert state.counts["review_read"] == 3


def test_support_log_sentiment_waits_and_howto():
    """Support kinds are logged [time, sentiment or 0, wait or 0] in time order; at most 8 kept;
    topics containing "how" count as how-to contacts."""
    state, _ = run(
        [
            event("s1", 0, Touchpoint.SUPPORT_TICKET, payload=SupportPayload(topic="billing", sentiment=-0.5)),
            event("s2", 1, Touchpoint.COMPLAINT, payload=SupportPayload(sentiment=-1.0, wait_seconds=600)),
            event("s3", 2, Touchpoint.PRESALES_CHAT, payload=SupportPayload(sentiment=0.5, topic="How do I pay?")),
            event("s4", 3, Touchpoint.SUPPORT_TICKET),
            event("x", 3.5, Touchpoint.PAGE_VIEW),
        ]
    )
    assert state.support_contacts == 4
    assert state.support_sentiment_n == 3
    assert state.mean_support_sentiment == pytest.approx(-1 / 3)
    assert state.support_log == [[ts(0), -0.5, 0.0], [ts(1), -1.0, 600.0], [ts(2), 0.5, 0.0], [ts(3), 0.0, 0.0]]
    assert state.howto_contacts == 1
    assert state.last_complaint_at == ts(1)
    # an older contact arriving late goes in its place; only the latest 8 are kept
    more = [event(f"t{i}", 10 + i, Touchpoint.SUPPORT_TICKET) for i in range(5)]
    state, _ = run(
        [*more, event("old", 0.5, Touchpoint.SUPPORT_TICKET, payload=SupportPayload(wait_seconds=9))], state=state
    )
    times = [entry[0] for entry in state.support_log]
    assert times == sorted(times) and len(times) == 8
    assert times == [ts(d) for d in (1, 2, 3, 10, 11, 12, 13, 14)]
    assert state.support_contacts == 10


def test_surveys_neutral_answers_and_latest_scores():
    state, _ = run(
        [
            event("q1", 0, Touchpoint.SURVEY_RESPONSE, payload=ScorePayload(csat=3, nps=7)),  # neutral
            event("q2", 1, Touchpoint.REVIEW_WRITTEN, payload=ScorePayload(rating=3)),  # a review, not a survey
            event("q3", 2, Touchpoint.SURVEY_RESPONSE, payload=ScorePayload(csat=4, ces=6)),  # not neutral
            event("q4", 3, Touchpoint.SURVEY_RESPONSE, payload=ScorePayload(nps=8, ces=4)),  # neutral
            event("q5", 4, Touchpoint.SURVEY_RESPONSE, payload=ScorePayload(sentiment=0.2)),  # no score: not counted
        ]
    )
    assert state.scores == {"csat": 4, "nps": 8, "rating": 3, "ces": 4}
    assert state.surveys == 3
    assert state.neutral_surveys == 2
    assert state.support_sentiment_n == 1


def test_reviews_negative_and_positive():
    state, _ = run(
        [
            event("r1", 0, Touchpoint.REVIEW_WRITTEN, payload=ScorePayload(rating=1)),
            event("r2", 1, Touchpoint.REVIEW_WRITTEN, payload=ScorePayload(rating=2)),
            event("r3", 2, Touchpoint.REVIEW_WRITTEN, payload=ScorePayload(rating=3)),
            event("r4", 3, Touchpoint.REVIEW_WRITTEN, payload=ScorePayload(rating=4)),
            event("r5", 4, Touchpoint.REVIEW_WRITTEN, payload=ScorePayload(rating=5)),
            event("r0", -1, Touchpoint.REVIEW_WRITTEN, payload=ScorePayload(rating=5)),  # older, arriving late
        ]
    )
    assert state.negative_reviews == 2
    assert state.last_negative_review_at == ts(1)
    assert state.last_positive_review_at == ts(4)
    assert state.scores["rating"] == 5


def test_channels_locale_segment_and_change_requests():
    channels = ["web", "app", "web", "email", "store", "phone", "social", "sms", "chat", "kiosk", "app"]
    state, _ = run(
        [event(f"c{i}", i, channel=ch) for i, ch in enumerate(channels)]
        + [event("cr", 20, Touchpoint.CHANGE_REQUEST, segment="e-commerce", country="BR", language="pt-BR")]
    )
    assert state.channels == ["web", "app", "email", "store", "phone", "social", "sms", "chat"]  # distinct, at most 8
    assert (state.country, state.language, state.segment) == ("BR", "pt-BR", "e-commerce")
    assert state.last_change_request_at == ts(20)
    # an event without locale keeps the earlier values
    state, _ = run(
        [
            TouchpointEvent(
                event_id="bare",
                customer_id=CUSTOMER,
                occurred_at=at(21),
                stage="pre_purchase",
                touchpoint="page_view",
                channel="web",
            )
        ],
        state=state,
    )
    assert (state.country, state.language) == ("BR", "pt-BR")


def _signal_values(state: CustomerState, now: float) -> dict:
    return {name: sig.read(state, now, MODEL.rules.ctx) for name, sig in CATALOGUE.items()}


def _sample_events(day: float) -> list[TouchpointEvent]:
    """One event of every touchpoint kind, with the richest payload it may carry."""
    out = []
    for tp in Touchpoint:
        if tp is Touchpoint.ERASURE_REQUEST:
            continue  # never folded into a state: the processor and the replay forget the customer instead
        payload = None
        if tp is Touchpoint.PURCHASE or tp in (
            Touchpoint.RETURN,
            Touchpoint.REFUND,
            Touchpoint.SUBSCRIPTION_RENEWED,
            Touchpoint.SUBSCRIPTION_UPGRADED,
        ):
            payload = OrderPayload(amount=30, currency="EUR", coupon="X")
        elif tp in (Touchpoint.SURVEY_RESPONSE, Touchpoint.REVIEW_WRITTEN):
            payload = ScorePayload(csat=2, nps=3, ces=5, rating=1, sentiment=-0.8)
        elif tp in (
            Touchpoint.SUPPORT_TICKET,
            Touchpoint.COMPLAINT,
            Touchpoint.PRESALES_CHAT,
            Touchpoint.CHANGE_REQUEST,
        ):
            payload = SupportPayload(topic="how to", sentiment=-0.9, wait_seconds=4000)
        elif tp in CONSENT_KINDS:
            payload = ConsentPayload(channel=ConsentChannel.SMS, source="preference_centre")
        out.append(event(f"k-{tp.value}", day, tp, payload=payload, country=None, language=None))
    return out


@pytest.mark.parametrize("sample", _sample_events(5), ids=lambda e: e.touchpoint.value)
def test_every_signal_an_event_changes_is_judged_again(sample):
    """The core re-judges only the rules whose signals an event can change (`Signal.on`); so any
    signal the fold of an event does change must list that event's kind (or one of its marks)."""
    base, _ = run(
        [
            event("v", 0, Touchpoint.PRODUCT_VIEW),
            purchase("p", 1),
            event("t", 2, Touchpoint.SUPPORT_TICKET, payload=SupportPayload(sentiment=0.5)),
        ]
    )
    now = ts(5)
    before = _signal_values(base, now)
    after_state = base.clone()
    marks = set(_fold(after_state, sample, sample.occurred_ts))
    after = _signal_values(after_state, now)
    missed = [
        name
        for name in CATALOGUE
        if before[name] != after[name] and CATALOGUE[name].on is not None and not (CATALOGUE[name].on & marks)
    ]
    assert missed == [], f"{sample.touchpoint.value} changes {missed} without re-judging the rules that read them"


# --------------------------------------------------------------------------- out of order


def test_older_event_arriving_later_does_not_move_times_backwards():
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
    assert next_due(state) == ts(20 + quiet_days([5, 20]))
    assert all(moves(o.changes) == [] for o in outs), "the old purchase does not re-make the customer new"


def test_out_of_order_purchases_reach_the_same_type_as_in_order():
    in_order, _ = buyer([0, 10, 20])
    shuffled, _ = run([purchase("p2", 20), purchase("p0", 0), purchase("p1", 10)])
    assert shuffled.lifecycle == in_order.lifecycle == "loyal"
    assert shuffled.mean_purchase_interval == in_order.mean_purchase_interval == 10 * DAY
    assert next_due(shuffled) == next_due(in_order) == ts(20 + quiet_days([0, 10, 20]))


def test_state_fields_all_round_trip_after_a_journey():
    state = _rich_state()
    assert CustomerState.from_json(state.to_json()) == state
    names = {f.name for f in dataclasses.fields(CustomerState)}
    assert {
        "pre_buy_events",
        "support_log",
        "neutral_surveys",
        "negative_reviews",
        "channels",
        "first_view_at",
        "suppressed_log",
    } <= names
