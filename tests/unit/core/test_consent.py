"""Consent through the core: consent events per channel, the playbook's opt-in / opt-out policy, marketing
and promotion suppressed as `no_consent` while service goes, nothing re-sent when consent comes later, a
consent revoked during the quiet hours stopping the action waiting for them, and hostile consent events
dead-lettered.

The shipped playbook: e-mail, push and ads are opt-out, SMS and phone opt-in.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas import STAGE_OF, ConsentPayload, OrderPayload, Stage, SupportPayload, Touchpoint, TouchpointEvent
from streams.core import advance, apply_event
from streams.core.intake import RawMessage, decode
from streams.core.model import load_model
from streams.core.playbook.playbook import DEFAULT_PLAYBOOK_FILE, PlaybookError, suppression_rule
from streams.core.state import CustomerState
from streams.profile import build_profile

D0 = datetime(2026, 3, 2, 10, tzinfo=UTC)  # a Monday, 10:00 UTC
MODEL = load_model()


def day(n: float) -> datetime:
    return D0 + timedelta(days=n)


def event(customer: str, n: int, kind: str, when: datetime, payload=None, **extra) -> TouchpointEvent:
    tp = Touchpoint(kind)
    if payload is None and kind == "purchase":
        payload = OrderPayload(amount=50.0, currency="EUR")
    return TouchpointEvent(
        event_id=f"{customer}:{n}",
        customer_id=customer,
        occurred_at=when,
        stage=extra.pop("stage", STAGE_OF[tp]),
        touchpoint=tp,
        channel=extra.pop("channel", "web"),
        payload=payload,
        **extra,
    )


def consent(channel: str, source: str | None = "preference_centre") -> ConsentPayload:
    return ConsentPayload.model_validate({"channel": channel, "source": source})


def run(model, events: list[TouchpointEvent], state: CustomerState | None = None):
    """Apply the events in order; every action sent and every suppression (action, kind, reason), and the state."""
    sent, suppressed = [], []
    for e in events:
        out = apply_event(state, e, model)
        assert out.refused is None, out.refused
        state = out.state
        sent += [a.action for a in out.actions]
        suppressed += [(s.action, s.kind, s.reason) for s in out.suppressed]
    assert state is not None
    return sent, suppressed, state


def playbook_with(tmp_path: Path, replace: dict[str, str]) -> Path:
    text = DEFAULT_PLAYBOOK_FILE.read_text()
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "playbook.yaml"
    path.write_text(text)
    return path


def three_purchases(customer: str, start: int, first_day: float) -> list[TouchpointEvent]:
    return [event(customer, start + i, "purchase", day(first_day + 5 * i)) for i in range(3)]


def test_an_unsubscribed_loyal_customer_gets_no_invite_but_still_gets_service(tmp_path):
    """Unsubscribed from e-mail, then three purchases (loyal) and two how-to tickets (confused): every
    e-mail marketing action is suppressed as no_consent, the e-mail tutorial links (service) still go."""
    events = [
        event("uma", 1, "page_view", day(0)),
        event("uma", 2, "unsubscribe", day(0.5), channel="email"),
        *three_purchases("uma", 3, 1),
        *[
            event("uma", 10 + i, "support_ticket", day(12 + i), payload=SupportPayload(topic="how to return"))
            for i in range(2)
        ],
    ]
    sent, suppressed, state = run(MODEL, events)
    assert "loyalty_programme_invite" not in sent and "welcome_onboarding" not in sent
    assert sent == ["lead_nurture_sequence", "tutorial_links"], "marketing before the unsubscribe; service after"
    assert state.lifecycle == "loyal" and "confused" in state.traits
    no_consent = [(a, r) for a, kind, r in suppressed if kind == "no_consent"]
    assert ("loyalty_programme_invite", "no consent: the customer revoked email marketing") in no_consent
    assert {a for a, _ in no_consent} >= {"welcome_onboarding", "loyalty_programme_invite"}
    assert state.consent == {"email": (False, day(0.5).timestamp(), None)}
    # counted and shown like every other suppression
    assert state.actions_suppressed == len(suppressed)
    profile = build_profile(state, [], MODEL)
    [email] = [c for c in profile["consent"] if c["channel"] == "email"]
    assert email == {
        "channel": "email",
        "policy": "opt_out",
        "granted": False,
        "at": "2026-03-02T22:00:00.000Z",
        "source": None,
        "marketing_allowed": False,
    }
    assert {s["kind"] for s in profile["actions"]["suppressed"]} == {"no_consent"}


def test_the_same_customer_without_the_unsubscribe_gets_the_invite():
    """The control for the test above: e-mail is opt-out, so with no consent event the invite goes."""
    sent, suppressed, state = run(MODEL, [event("vic", 1, "page_view", day(0)), *three_purchases("vic", 2, 1)])
    assert "loyalty_programme_invite" in sent and "welcome_onboarding" in sent
    assert not [s for s in suppressed if s[1] == "no_consent"] and state.consent == {}


@pytest.fixture
def sms_model(tmp_path):
    """The loyalty invite goes by SMS (opt-in in the shipped policy)."""
    return load_model(
        playbook_file=playbook_with(
            tmp_path,
            {
                "loyalty_programme_invite:    {channel: email,": "loyalty_programme_invite:    {channel: sms,",
            },
        )
    )


def test_opt_in_sends_nothing_until_consent_is_granted(sms_model):
    sent, suppressed, _ = run(sms_model, three_purchases("wes", 1, 0))
    assert "loyalty_programme_invite" not in sent
    assert (
        "loyalty_programme_invite",
        "no_consent",
        "no consent: sms marketing is opt-in and the customer has not granted it",
    ) in suppressed

    granted = [event("xan", 0, "consent_granted", day(-1), payload=consent("sms"), stage=Stage.PRE_PURCHASE)]
    sent, suppressed, state = run(sms_model, granted + three_purchases("xan", 1, 0))
    assert "loyalty_programme_invite" in sent and not [s for s in suppressed if s[1] == "no_consent"]
    assert state.consent["sms"] == (True, day(-1).timestamp(), "preference_centre")


def test_opt_out_sends_until_revoked_and_a_policy_can_be_changed(tmp_path):
    """ads is opt-out: a consent_revoked for ads stops the retargeting audience; made opt-in, it needs a grant."""
    revoked = event("yul", 0, "consent_revoked", day(0), payload=consent("ads"))
    state = run(MODEL, [revoked])[2]
    assert MODEL.playbook.no_consent(state, "ads") == "no consent: the customer revoked ads marketing"
    assert MODEL.playbook.no_consent(state, "email") is None
    assert MODEL.playbook.no_consent(state, "web") is None, "channels the policy does not name need none"
    opt_in = load_model(playbook_file=playbook_with(tmp_path, {"  email: opt_out": "  email: opt_in"}))
    sent, suppressed, _ = run(opt_in, [event("zed", 1, "page_view", day(0))])
    assert sent == [] and [s[:2] for s in suppressed] == [("lead_nurture_sequence", "no_consent")]


def test_consent_granted_after_a_suppressed_action_does_not_resend_it(sms_model):
    _, suppressed, state = run(sms_model, three_purchases("abe", 1, 0))
    assert ("loyalty_programme_invite", "no_consent") in [s[:2] for s in suppressed]
    later = apply_event(state, event("abe", 9, "consent_granted", day(11), payload=consent("sms")), sms_model)
    assert later.actions == [] and later.held_out == [] and later.suppressed == []
    assert later.state.consent["sms"][0] is True
    month = advance(later.state, day(60).timestamp(), sms_model)
    assert "loyalty_programme_invite" not in [a.action for a in month.actions], "granting consent sends nothing"
    # The next time the customer enters loyal, the invite may go: consent now holds.
    assert sms_model.playbook.no_consent(later.state, "sms") is None


def test_a_consent_revoked_during_the_quiet_hours_stops_the_waiting_action(tmp_path):
    """A prospect at 23:00 (UTC, Portugal) waits for the lead-nurture e-mail until 08:00; they unsubscribe at
    02:00; at 08:00 the e-mail is suppressed as no_consent and its place in the cap is given back."""
    path = playbook_with(tmp_path, {"\nsuppress:": '\nquiet_hours: {from: "21:00", to: "08:00"}\nsuppress:'})
    model = load_model(playbook_file=path)
    night = datetime(2026, 3, 2, 23, tzinfo=UTC)
    first = apply_event(None, event("bea", 1, "page_view", night, country="PT"), model)
    assert [d.action for d in first.deferred] == ["lead_nurture_sequence"]
    unsub = apply_event(first.state, event("bea", 2, "unsubscribe", night + timedelta(hours=3), country="PT"), model)
    assert unsub.actions == [] and unsub.state.deferred
    morning = advance(unsub.state, (night + timedelta(hours=9)).timestamp(), model)
    assert morning.actions == []
    [gone] = morning.suppressed
    assert (gone.action, gone.kind) == ("lead_nurture_sequence", "no_consent")
    assert "lead_nurture_sequence" not in morning.state.actions_sent and morning.state.marketing_log == []


def test_the_latest_word_per_channel_stands_whatever_order_events_arrive_in():
    grant = event("cat", 1, "consent_granted", day(2), payload=consent("email", "signup_form"))
    revoke = event("cat", 2, "consent_revoked", day(1), payload=consent("email"))
    in_order = run(MODEL, [revoke, grant])[2].consent
    late = run(MODEL, [grant, revoke])[2].consent  # the revocation arrives late: older than the grant
    assert in_order == late == {"email": (True, day(2).timestamp(), "signup_form")}
    # an unsubscribe may name another channel
    push = event("cat", 3, "unsubscribe", day(3), payload=consent("push", "app_settings"))
    assert run(MODEL, [grant, push])[2].consent["push"] == (False, day(3).timestamp(), "app_settings")


def test_consent_survives_the_redis_record():
    state = run(MODEL, [event("dan", 1, "unsubscribe", day(0), channel="email")])[2]
    again = CustomerState.from_json(state.to_json())
    assert again.consent == state.consent and b'"cn"' in state.to_json()


def _raw(payload: dict | None, kind: str = "consent_granted", **changes) -> RawMessage:
    data = {
        "event_id": "e1",
        "customer_id": "eve",
        "occurred_at": "2026-03-01T10:00:00Z",
        "stage": "pre_purchase",
        "touchpoint": kind,
        "channel": "web",
        **({"payload": payload} if payload is not None else {}),
        **changes,
    }
    return RawMessage("journey.touchpoints", 0, 1, b"eve", json.dumps(data).encode())


@pytest.mark.parametrize(
    ("payload", "kind", "expected"),
    [
        ({"kind": "consent", "channel": "fax"}, "consent_granted", "payload.consent.channel"),
        ({"kind": "consent", "channel": "EMAIL"}, "consent_granted", "payload.consent.channel"),
        ({"kind": "consent", "channel": "email", "purpose": "service"}, "consent_revoked", "payload.consent.purpose"),
        ({"kind": "consent", "channel": "email", "source": "x" * 65}, "consent_granted", "payload.consent.source"),
        ({"kind": "consent", "channel": "email", "source": "a\x1b[31m"}, "consent_granted", "payload.consent.source"),
        ({"kind": "consent", "channel": "email", "extra": 1}, "consent_granted", "payload.consent.extra"),
        (None, "consent_granted", "needs a payload of kind 'consent'"),
        ({"kind": "order", "amount": 1, "currency": "EUR"}, "unsubscribe", "does not take a payload of kind 'order'"),
    ],
)
def test_hostile_consent_events_are_dead_lettered(payload, kind, expected):
    error = decode(_raw(payload, kind), 65536)
    assert isinstance(error, str) and expected in error, error


def test_consent_events_take_any_stage_and_an_unsubscribe_needs_no_payload():
    for stage in ("pre_purchase", "purchase", "post_purchase"):
        decoded = decode(_raw({"kind": "consent", "channel": "sms"}, stage=stage), 65536)
        assert isinstance(decoded, TouchpointEvent) and decoded.stage.value == stage
    assert isinstance(decode(_raw(None, "unsubscribe"), 65536), TouchpointEvent)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("consent:\n  fax: opt_in\n", "'fax' is not a channel consent is given for"),
        ("consent:\n  email: maybe\n", "consent.email"),
    ],
)
def test_a_bad_consent_policy_stops_the_worker_naming_the_line(tmp_path, text, expected):
    path = playbook_with(
        tmp_path,
        {"consent:\n  email: opt_out\n  push: opt_out\n  ads: opt_out\n  sms: opt_in\n  phone: opt_in\n": text},
    )
    with pytest.raises(PlaybookError) as info:
        load_model(playbook_file=path)
    assert expected in str(info.value) and "line" in str(info.value)


def test_suppressions_are_grouped_by_their_rule_with_its_values():
    """What the replay's table groups by: the rule's own values stay (the cap, a cooldown's days)."""
    cap = "frequency cap: 3 marketing messages in the last 7 days (cap 3)"
    assert suppression_rule(cap) == cap
    assert (
        suppression_rule("cooldown: sent 3.2 days ago, cooldown 14 days")
        == suppression_rule("cooldown: sent 0.5 days ago, cooldown 14 days")
        == "cooldown: sent again within the cooldown (14 days)"
    )
    assert suppression_rule("cooldown: sent 3.2 days ago, cooldown 30 days") != suppression_rule(
        "cooldown: sent 3.2 days ago, cooldown 14 days"
    )
    assert (
        suppression_rule("cooldown: already waiting for the quiet hours to end, until 2026-03-03T08:00:00Z")
        == "cooldown: already waiting for the quiet hours to end"
    )
    assert suppression_rule("no consent: the customer revoked email marketing") == (
        "no consent: the customer revoked email marketing"
    )


def test_explain_shows_the_consent_and_the_no_consent_suppressions():
    from rich.console import Console

    from streams.explain import render_customer, render_types

    unsub = event("fay", 2, "unsubscribe", day(0.5), payload=consent("email", "list_unsubscribe"))
    state = run(MODEL, [event("fay", 1, "page_view", day(0)), unsub, *three_purchases("fay", 3, 1)])[2]
    console = Console(record=True, width=200)
    render_customer(console, state, [], MODEL)
    text = console.export_text()
    assert "email   │ opt_out │ revoked 2026-03-02 22:00 via list_unsubscribe │ no (suppressed as no_consent)" in text
    assert "loyalty_programme_invite (suppressed) │ 2026-03-13 10:00: no consent: the customer revoked email" in text
    render_types(console, MODEL)
    assert (
        "Consent for marketing and promotion: ads opt_out, email opt_out, phone opt_in, push opt_out, sms opt_in"
        in (console.export_text())
    )
