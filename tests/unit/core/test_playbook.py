"""The playbook through the core: suppression by mood, the weekly cap, cooldowns, the lapsed customer's
last win-back. Every suppression carries its reason, is counted in the state and kept in its log.

The shipped playbook where it shows the case; small playbooks written to tmp_path where a
number of its own makes the case clearer. Customers are in the home market (PT) unless a
test toggles them abroad on purpose: the `international` trait is entered and left at will
by alternating the country, which makes it a handy trigger for repeated sends.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from scenarios import MINUTE, Journey, at, ts

from streams.core import advance, apply_event
from streams.core.model import Model, load_model
from streams.core.playbook.playbook import SUPPRESSED_KEPT, Suppressed

MODEL = load_model()
DAY = 86_400.0


def play(steps, model: Model = MODEL, state=None):
    outcomes = []
    for step in steps:
        out = advance(state, ts(step.day), model) if not hasattr(step, "event_id") else apply_event(state, step, model)
        outcomes.append(out)
        state = out.state
    return state, outcomes


def sent(outcomes, action: str | None = None):
    return [a for o in outcomes for a in o.actions if action is None or a.action == action]


def suppressed(outcomes, action: str | None = None):
    return [s for o in outcomes for s in o.suppressed if action is None or s.action == action]


def write_playbook(tmp_path: Path, text: str, name: str = "playbook.yaml") -> Model:
    path = tmp_path / name
    path.write_text(text)
    return load_model(playbook_file=path)


def toggling(customer: str | Journey, days, abroad: str = "ES") -> Journey:
    """A customer (or a journey, extended) who enters `international` on each of `days` and leaves
    it again half a day later."""
    j = Journey(customer).view(days[0] - 1) if isinstance(customer, str) else customer
    for d in days:
        j.ev(d, "page_view", country=abroad, language="es-ES").ev(d + 0.5, "page_view", country="PT", language="pt-PT")
    return j


# --------------------------------------------------------------------------- mood


def test_an_angry_customer_going_at_risk_gets_no_win_back_offer():
    """At risk 90 days after a single purchase; a complaint on day 85 makes them angry until day 99:
    the win-back offer (a promotion) is suppressed, with a reason naming `angry`, and counted."""
    _, outs = play(Journey("calm").buy(0).advance(95).steps)
    assert [a.action for a in outs[-1].actions] == ["win_back_offer"]

    j = Journey("angry").buy(0).ticket(85, "broken", kind="complaint")
    state, outs = play(j.steps)
    assert "angry" in state.traits
    assert [a.action for a in outs[-1].actions] == ["support_escalation_apology"]
    count, log = state.actions_suppressed, list(state.suppressed_log)

    out = advance(state, ts(95), MODEL)
    [change] = out.changes
    assert (change.from_, change.to, change.at) == ("new", "at_risk", at(90))
    assert out.actions == []
    [s] = out.suppressed
    assert s.action == "win_back_offer" and "angry" in s.reason
    assert s == Suppressed("win_back_offer", "no promotion while the customer is angry")
    assert out.state.actions_suppressed == count + 1
    assert out.state.suppressed_log == [*log, [ts(90), "win_back_offer", s.reason]]
    assert "win_back_offer" not in out.state.actions_sent, "a suppressed action is not recorded as sent"
    assert out.state.marketing_log == state.marketing_log


def test_negative_experience_also_blocks_promotions_and_the_reason_names_every_mood():
    j = Journey("neg").buy(0, coupon="A").review(3, rating=1)
    state, _ = play(j.steps)
    assert "negative_experience" in state.traits
    out = apply_event(state, j.buy(10, coupon="B").steps[-1], MODEL)
    assert "discount_seeker" in out.state.traits
    assert sent([out], "lifecycle_coupon") == []
    [s] = suppressed([out], "lifecycle_coupon")
    assert s.reason == "no promotion while the customer is negative_experience"
    # angry and negative at once: both named
    j = Journey("both").buy(0, coupon="A").review(3, rating=1).ticket(5, kind="complaint").buy(6, coupon="B")
    _, outs = play(j.steps)
    [s] = suppressed(outs, "lifecycle_coupon")
    assert "angry" in s.reason and "negative_experience" in s.reason


def test_service_actions_are_never_suppressed_by_mood():
    """An angry customer who writes a bad review gets the personal outreach; a customer with a bad
    review who complains gets the escalation; an angry customer abroad gets bilingual routing."""
    j = Journey("svc").buy(0).ticket(5, kind="complaint").review(6, rating=1)
    state, outs = play(j.steps)
    assert {"angry", "negative_experience"} <= set(state.traits)
    assert [a.action for a in outs[-1].actions] == ["personal_outreach_offer"]
    j = Journey("svc2").buy(0).review(5, rating=1).ticket(6, kind="complaint")
    _, outs = play(j.steps)
    assert [a.action for a in outs[-1].actions] == ["support_escalation_apology"]
    j = Journey("svc3").buy(0).ticket(5, kind="complaint").ev(6, "page_view", country="ES", language="es-ES")
    _, outs = play(j.steps)
    assert [a.action for a in outs[-1].actions] == ["multilingual_routing"]
    assert suppressed(outs) == []


def test_marketing_without_an_offer_still_reaches_an_angry_customer():
    """Only promotions wait for the mood to pass: the loyalty invite (marketing) is sent."""
    j = Journey("m").buy(0).buy(10).ticket(15, kind="complaint").buy(20)
    state, outs = play(j.steps)
    assert "angry" in state.traits and state.lifecycle == "loyal"
    assert [a.action for a in outs[-1].actions] == ["loyalty_programme_invite"]


def test_the_promotion_flows_again_once_the_mood_has_passed():
    j = Journey("later").buy(0, coupon="A").ticket(5, kind="complaint").buy(6, coupon="B")
    state, outs = play(j.steps)
    assert [s.action for s in suppressed(outs)] == ["lifecycle_coupon"]
    state = advance(state, ts(20), MODEL).state  # 14 days after the complaint
    assert "angry" not in state.traits
    # the customer goes at risk at 6 + max(30, 3 x 6) = 36: the win-back offer is sent
    out = advance(state, ts(40), MODEL)
    assert [a.action for a in out.actions] == ["win_back_offer"]


# --------------------------------------------------------------------------- the weekly cap


CAPPED = """\
version: 1
caps: {marketing_per_week: 3}
actions:
  hola:   {channel: email, kind: marketing, cooldown_days: 0}
  promo:  {channel: email, kind: promotion, cooldown_days: 0}
  route:  {channel: support, kind: service, cooldown_days: 0}
triggers:
  international: [hola, promo, route]
"""


def test_the_weekly_cap_suppresses_the_next_message_and_allows_it_after_seven_days(tmp_path):
    """Cap 3: entering `international` sends a marketing message and a promotion (both counted).
    Day 0: hola, promo; day 1: hola, then the promotion is the fourth in 7 days - suppressed;
    day 6.9: both suppressed; day 7: the day-0 sends have left the window - hola and promo again.
    The service action is sent every time."""
    model = write_playbook(tmp_path, CAPPED)
    state, outs = play(toggling("cap", [0, 1, 6.9, 7]).steps, model)
    entries = [o for o in outs if any(c.to == "international" for c in o.changes)]
    assert [[a.action for a in o.actions] for o in entries] == [
        ["hola", "promo", "route"],
        ["hola", "route"],
        ["route"],
        ["hola", "promo", "route"],
    ]
    assert [[s.action for s in o.suppressed] for o in entries] == [[], ["promo"], ["hola", "promo"], []]
    reason = "frequency cap: 3 marketing messages in the last 7 days (cap 3)"
    assert {s.reason for o in entries for s in o.suppressed} == {reason}
    assert state.actions_suppressed == 3
    assert [entry[1:] for entry in state.suppressed_log] == [["promo", reason], ["hola", reason], ["promo", reason]]
    assert [entry[0] for entry in state.suppressed_log] == [ts(1), ts(6.9), ts(6.9)]


def test_the_weekly_cap_of_the_shipped_playbook():
    """Cap 3 in the shipped playbook: lead nurture (day 0), coupon (day 1.2), expert content (day 2.2)
    - the strong call to action on day 3 is the fourth marketing message in 7 days; the
    retargeting on day 8.2 (uncertain: 3 cart changes among 7+ pre-purchase events) is sent: the
    day-0 message has left the window."""
    j = (
        Journey("cap")
        .view(0)
        .view(1, n=3, touchpoint="coupon_applied", every=0.1)
        .view(2, n=5, touchpoint="review_read", every=0.1)
        .view(3)
        .ev(8, "add_to_cart")
        .ev(8.1, "remove_from_cart")
        .ev(8.2, "add_to_cart")
    )
    state, outs = play(j.steps)
    assert [(a.action, a.at) for a in sent(outs)] == [
        ("lead_nurture_sequence", at(0)),
        ("lifecycle_coupon", at(1.2)),
        ("expert_content", at(2.2)),
        ("retargeting_audience", at(8.2)),
    ]
    [s] = suppressed(outs)
    assert s.action == "strong_call_to_action"
    assert s.reason == "frequency cap: 3 marketing messages in the last 7 days (cap 3)"
    assert state.actions_suppressed == 1


def test_a_cap_of_zero_stops_all_marketing_but_no_service(tmp_path):
    model = write_playbook(tmp_path, CAPPED.replace("marketing_per_week: 3", "marketing_per_week: 0"))
    state, outs = play(toggling("zero", [0, 1, 2, 3]).steps, model)
    assert [a.action for a in sent(outs)] == ["route"] * 4
    assert state.actions_suppressed == 8
    assert len(state.suppressed_log) == SUPPRESSED_KEPT, "the log keeps the latest; the count keeps all"
    assert state.suppressed_log[-1][:2] == [ts(3), "promo"]


# --------------------------------------------------------------------------- cooldowns


def test_cooldown_of_a_custom_action(tmp_path):
    """A 10-day cooldown: sent on day 0, suppressed on day 5 (and not recorded as sent), sent on day 10."""
    model = write_playbook(
        tmp_path,
        """\
version: 1
caps: {marketing_per_week: 10}
actions:
  hola: {channel: email, kind: marketing, cooldown_days: 10}
triggers:
  international: [hola]
""",
    )
    state, outs = play(toggling("cool", [0, 5, 10 - MINUTE, 10]).steps, model)
    entries = [o for o in outs if any(c.to == "international" for c in o.changes)]
    assert [[a.action for a in o.actions] for o in entries] == [["hola"], [], [], ["hola"]]
    assert [s.reason for o in entries for s in o.suppressed] == [
        "cooldown: sent 5.0 days ago, cooldown 10 days",
        "cooldown: sent 10.0 days ago, cooldown 10 days",
    ]
    assert state.actions_sent["hola"] == ts(10)
    assert state.actions_suppressed == 2


def test_cooldown_of_the_loyalty_invite_in_the_shipped_playbook():
    """loyal -> at_risk -> loyal within the invite's 90 days: no second invite; after it, sent again."""
    j = Journey("loyal").buy(0).buy(10).buy(20)
    state, outs = play(j.steps)
    assert "loyalty_programme_invite" in [a.action for a in outs[-1].actions]
    # at risk on day 20 + max(30, 3 x 10) = 50; comeback on day 60, 40 days after the invite
    out = apply_event(state, j.buy(60).steps[-1], MODEL)
    assert [(c.from_, c.to) for c in out.changes if c.dimension == "lifecycle"] == [
        ("loyal", "at_risk"),
        ("at_risk", "loyal"),
    ]
    assert [a.action for a in out.actions] == ["win_back_offer"]
    [s] = out.suppressed
    assert s.action == "loyalty_programme_invite" and s.reason.startswith("cooldown: sent 40.0 days ago")
    assert out.state.actions_sent["loyalty_programme_invite"] == ts(20)
    # four purchases over 60 days: rhythm 20, at risk on day 120; comeback on day 130, 110 days after the invite
    out = apply_event(out.state, j.buy(130).steps[-1], MODEL)
    assert [a.action for a in out.actions] == ["win_back_offer", "loyalty_programme_invite"]
    assert out.suppressed == []


def test_service_actions_have_cooldowns_too():
    """Angry by a CSAT of 1, calm after a CSAT of 5, angry again 3 days later: the escalation
    (cooldown 7 days) is not sent twice."""
    j = Journey("csat").buy(0).survey(10, csat=1).survey(11, csat=5).survey(13, csat=2)
    _, outs = play(j.steps)
    entered = [o for o in outs if any(c.to == "angry" for c in o.changes)]
    assert len(entered) == 2
    assert [a.action for a in entered[0].actions] == ["support_escalation_apology"]
    assert entered[1].actions == []
    assert [s.reason for s in entered[1].suppressed] == ["cooldown: sent 3.0 days ago, cooldown 7 days"]


# --------------------------------------------------------------------------- lapsed


def test_lapsed_one_last_win_back_then_no_marketing_until_they_come_back():
    j = Journey("gone").buy(0).advance(200)
    state, outs = play(j.steps)
    assert state.lifecycle == "lapsed"
    assert [(a.action, a.at) for a in outs[-1].actions] == [("win_back_offer", at(90)), ("last_win_back", at(180))]
    assert state.final_win_back_at == ts(180)

    # still lapsed, they read reviews and apply coupons: the marketing and the promotion are suppressed,
    # the service action (a change request after a purchase) is sent
    first = len(j.steps)
    j.view(201, n=5, touchpoint="review_read", every=0.1).view(202, n=3, touchpoint="coupon_applied", every=0.1)
    j.ev(203, "change_request")
    state, outs = play(j.steps[first:], state=state)
    assert state.lifecycle == "lapsed" and {"informed_buyer", "discount_seeker"} <= set(state.traits)
    reason = "lapsed: the last win-back was sent; no more marketing until they come back"
    assert [(s.action, s.reason) for s in suppressed(outs)] == [
        ("expert_content", reason),
        ("lifecycle_coupon", reason),
    ]
    assert [a.action for a in sent(outs)] == ["change_cost_notice"]
    # no second last win-back while they stay lapsed
    assert sent([advance(state, ts(600), MODEL)], "last_win_back") == []

    # a purchase brings them back (two purchases: new) and marketing flows again
    back = apply_event(state, j.buy(220).steps[-1], MODEL)
    assert [(c.from_, c.to) for c in back.changes if c.dimension == "lifecycle"] == [("lapsed", "new")]
    assert [a.action for a in back.actions] == ["welcome_onboarding"]
    assert back.state.final_win_back_at is None
    # ...and when they go quiet again (rhythm 220 days: at risk at 220 + 660), the win-back offer is sent
    again = advance(back.state, ts(220 + 3 * 220 + 1), MODEL)
    assert [(c.to, c.at) for c in again.changes if c.dimension == "lifecycle"] == [("at_risk", at(880))]
    assert [a.action for a in again.actions if a.params.get("type") == "at_risk"] == ["win_back_offer"]


@pytest.mark.parametrize("kind", ["marketing", "promotion"])
def test_a_lapsed_customer_gets_nothing_marketing_of_any_kind_after_the_last_win_back(tmp_path, kind):
    model = write_playbook(
        tmp_path,
        f"""\
version: 1
suppress: {{last_win_back: bye}}
actions:
  bye:  {{channel: email, kind: promotion, cooldown_days: 365}}
  hola: {{channel: email, kind: {kind}, cooldown_days: 0}}
  route: {{channel: support, kind: service, cooldown_days: 0}}
triggers:
  lapsed: [bye]
  international: [hola, route]
""",
    )
    j = Journey("lapsed").buy(0).advance(181)
    state, outs = play(j.steps, model)
    assert [a.action for a in sent(outs)] == ["bye"]
    first = len(j.steps)
    state, outs = play(toggling(j, [190]).steps[first:], model, state)
    assert [a.action for a in sent(outs)] == ["route"]
    assert [s.action for s in suppressed(outs)] == ["hola"]
