"""Quiet hours through the core: marketing and promotion decided in the customer's local night wait in
their state and are emitted when it ends, with the id they were decided with; service actions go at
once; a waiting action whose type the customer left is suppressed as `superseded`. The same with the
offline replay, and across the state's Redis encoding.

The shipped playbook with `quiet_hours: {from: "21:00", to: "08:00"}` added. Customers are in Portugal
(Europe/Lisbon: UTC+0 until 2026-03-29) unless a test says otherwise, so local times read as UTC here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas import STAGE_OF, OrderPayload, Touchpoint, TouchpointEvent
from streams.core import advance, apply_event, next_due
from streams.core.ids import action_id
from streams.core.model import load_model
from streams.core.playbook.playbook import DEFAULT_PLAYBOOK_FILE
from streams.core.state import CustomerState
from streams.replay.engine import OfflineReplay

QUIET = 'quiet_hours: {from: "21:00", to: "08:00"}\n'
#: A Monday in March 2026, midnight UTC.
D0 = datetime(2026, 3, 2, tzinfo=UTC)


def at(day: float, hour: float) -> datetime:
    return D0 + timedelta(days=day, hours=hour)


def ts(day: float, hour: float) -> float:
    return at(day, hour).timestamp()


def event(customer: str, n: int, kind: str, when: datetime, **extra) -> TouchpointEvent:
    tp = Touchpoint(kind)
    payload = OrderPayload(amount=50.0, currency="EUR") if kind == "purchase" else None
    fields = {"country": "PT", "language": "pt-PT", **extra}
    return TouchpointEvent(
        event_id=f"{customer}:{n}",
        customer_id=customer,
        occurred_at=when,
        stage=STAGE_OF[tp],
        touchpoint=tp,
        channel="web",
        payload=payload,
        **fields,
    )


def playbook_with(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "playbook.yaml"
    path.write_text(DEFAULT_PLAYBOOK_FILE.read_text().replace("\nsuppress:", f"\n{text}\nsuppress:", 1))
    return path


@pytest.fixture
def quiet_model(tmp_path):
    return load_model(playbook_file=playbook_with(tmp_path, QUIET))


def test_an_action_decided_at_night_is_emitted_at_the_windows_end_with_its_id(quiet_model):
    first = apply_event(None, event("ana", 1, "page_view", at(0, 23)), quiet_model)
    [change] = first.changes
    assert (change.to, first.actions, [d.action for d in first.deferred]) == ("prospect", [], ["lead_nurture_sequence"])
    assert first.deferred[0].until == ts(1, 8)
    assert next_due(first.state) == ts(1, 8), "the release is the customer's next due time"

    assert advance(first.state, ts(1, 8) - 0.001, quiet_model).actions == []
    released = advance(first.state, ts(1, 9), quiet_model)  # a sweep that runs late still stamps the end
    [action] = released.actions
    assert action.action_id == action_id(change.change_id, "lead_nurture_sequence")
    assert action.triggered_by == change.change_id
    assert action.at == at(1, 8)
    assert action.params["deferred_from"] == "2026-03-02T23:00:00Z"
    assert released.state.deferred == [] and next_due(released.state) != ts(1, 8)
    assert advance(released.state, ts(2, 9), quiet_model).actions == [], "released once"

    # the same customer without quiet hours: the same action, id and content, sent at once
    plain = apply_event(None, event("ana", 1, "page_view", at(0, 23)), load_model())
    [now] = plain.actions
    assert now.action_id == action.action_id
    assert now.model_dump(exclude={"at", "params"}) == action.model_dump(exclude={"at", "params"})


def test_by_day_nothing_waits(quiet_model):
    out = apply_event(None, event("bo", 1, "page_view", at(0, 10)), quiet_model)
    assert [a.action for a in out.actions] == ["lead_nurture_sequence"] and out.deferred == []


def test_a_service_action_is_never_deferred(quiet_model):
    """Abroad (Spain, UTC+1) at 23:30 UTC: `international` triggers a service routing, sent at 00:30 local."""
    state = apply_event(None, event("cy", 1, "page_view", at(0, 10)), quiet_model).state
    out = apply_event(state, event("cy", 2, "page_view", at(0, 23.5), country="ES", language="es-ES"), quiet_model)
    assert "international" in out.state.traits
    assert [a.action for a in out.actions] == ["multilingual_routing"]
    assert out.actions[0].at == at(0, 23.5) and out.deferred == []


def test_a_waiting_action_is_suppressed_when_the_customer_moved_on(quiet_model):
    """A prospect at 23:00 waits for the lead-nurture sequence; their purchase at 02:00 makes them new (and
    `efficient`: they bought after one look)."""
    state = apply_event(None, event("di", 1, "page_view", at(0, 23)), quiet_model).state
    bought = apply_event(state, event("di", 2, "purchase", at(1, 2)), quiet_model)
    assert [c.to for c in bought.changes] == ["new", "efficient"]
    waiting = ["welcome_onboarding", "concise_options_summary"]
    assert [d.action for d in bought.deferred] == waiting
    assert [entry[2] for entry in bought.state.deferred] == ["lead_nurture_sequence", *waiting]

    morning = advance(bought.state, ts(1, 8), quiet_model)
    assert [a.action for a in morning.actions] == waiting  # in the order they were decided
    [gone] = morning.suppressed
    assert (gone.action, gone.kind) == ("lead_nurture_sequence", "superseded")
    assert gone.reason == "superseded: the customer is no longer prospect (now new)"
    after = morning.state
    assert after.actions_suppressed == 1 and after.suppressed_log[-1] == [
        ts(1, 8),
        "lead_nurture_sequence",
        gone.reason,
    ]
    # It never went: its place in the cooldown and the cap is free again; the welcome keeps its own.
    assert "lead_nurture_sequence" not in after.actions_sent
    assert after.actions_sent["welcome_onboarding"] == ts(1, 2)
    assert after.marketing_log == [ts(1, 2), ts(1, 2)]


def test_the_cap_and_cooldown_are_judged_when_the_action_is_decided(tmp_path):
    """A cap of one: the second marketing message of the night is suppressed at once, though the first still waits."""
    text = DEFAULT_PLAYBOOK_FILE.read_text().replace("marketing_per_week: 3", "marketing_per_week: 1")
    path = tmp_path / "capped.yaml"
    path.write_text(text.replace("\nsuppress:", f"\n{QUIET}\nsuppress:", 1))
    model = load_model(playbook_file=path)
    state = apply_event(None, event("ed", 1, "page_view", at(0, 23)), model).state
    bought = apply_event(state, event("ed", 2, "purchase", at(1, 2)), model)
    assert [(s.action, s.kind) for s in bought.suppressed] == [
        ("welcome_onboarding", "frequency_cap"),
        ("concise_options_summary", "frequency_cap"),
    ]
    assert bought.deferred == [] and [e[2] for e in bought.state.deferred] == ["lead_nurture_sequence"]


def test_a_late_event_whose_night_the_customer_passed_releases_at_once(quiet_model):
    """The customer was judged at 10:00; an event of 23:00 the night before arrives late."""
    state = apply_event(None, event("fa", 1, "page_view", at(1, 10)), quiet_model).state
    old_purchase = apply_event(state, event("fa", 2, "purchase", at(0, 23)), quiet_model)
    assert [(a.action, a.at) for a in old_purchase.actions] == [
        ("welcome_onboarding", at(1, 8)),
        ("concise_options_summary", at(1, 8)),
    ]
    assert old_purchase.state.deferred == []


def test_the_zone_is_the_events_own_then_the_countrys(quiet_model):
    """23:00 UTC is 20:00 in São Paulo (UTC-3): not quiet. With a zone of Tokyo (UTC+9) it is 08:00: not quiet either;
    14:00 UTC is 23:00 in Tokyo: quiet until 08:00 Tokyo, 23:00 UTC."""
    brazil = apply_event(None, event("gi", 1, "page_view", at(0, 23), country="BR", language="pt-BR"), quiet_model)
    assert [a.action for a in brazil.actions] == ["lead_nurture_sequence", "multilingual_routing"]
    assert brazil.deferred == []
    tokyo = apply_event(None, event("ha", 1, "page_view", at(0, 14), timezone="Asia/Tokyo"), quiet_model)
    assert [(d.action, d.until) for d in tokyo.deferred] == [("lead_nurture_sequence", ts(0, 23))]
    assert tokyo.state.timezone == "Asia/Tokyo"


def test_the_default_zone_setting_for_customers_without_a_country(tmp_path):
    """No country: JOURNEY_DEFAULT_TIMEZONE decides. 12:00 UTC is 21:00 in Tokyo."""
    path = playbook_with(tmp_path, QUIET)
    noon = event("io", 1, "page_view", at(0, 12), country=None, language=None)
    assert apply_event(None, noon, load_model(playbook_file=path)).deferred == []
    tokyo = apply_event(None, noon, load_model(playbook_file=path, default_timezone="Asia/Tokyo"))
    assert [d.until for d in tokyo.deferred] == [ts(0, 23)]


def test_a_waiting_action_survives_the_states_redis_encoding(quiet_model):
    first = apply_event(None, event("jo", 1, "page_view", at(0, 23)), quiet_model)
    stored = CustomerState.from_json(first.state.to_json())
    assert stored == first.state
    assert advance(stored, ts(1, 8), quiet_model).actions == advance(first.state, ts(1, 8), quiet_model).actions


def test_advance_leaves_the_given_state_untouched(quiet_model):
    first = apply_event(None, event("ka", 1, "page_view", at(0, 23)), quiet_model)
    before = first.state.clone()
    advance(first.state, ts(1, 8), quiet_model)
    assert first.state == before


def test_the_offline_replay_releases_at_the_windows_end_and_counts_the_deferral(quiet_model):
    replay = OfflineReplay(quiet_model)
    night = replay.apply(event("lu", 1, "page_view", at(0, 23)))
    assert night.actions == [] and replay.counts.deferred["lead_nurture_sequence"] == 1
    morning = replay.apply(event("mo", 1, "page_view", at(1, 9)))  # another customer's event moves the clock
    assert [(a.customer_id, a.action, a.at) for a in morning.actions] == [
        ("lu", "lead_nurture_sequence", at(1, 8)),
        ("mo", "lead_nurture_sequence", at(1, 9)),
    ]


def test_a_waiting_promotion_is_not_sent_to_a_customer_who_became_angry_overnight(tmp_path):
    """Bought an hour after a first look at 22:00: `impulsive` decides an urgency promotion, which waits; a
    complaint at 01:00 makes them angry, and at 08:00 the promotion is suppressed by their mood. (A cap of
    ten, so that the night's four marketing messages all get past it.)"""
    path = playbook_with(tmp_path, QUIET)
    path.write_text(path.read_text().replace("marketing_per_week: 3", "marketing_per_week: 10"))
    quiet_model = load_model(playbook_file=path)
    state = apply_event(None, event("ni", 1, "product_view", at(0, 22)), quiet_model).state
    bought = apply_event(state, event("ni", 2, "purchase", at(0, 23)), quiet_model)
    assert "urgency_promotion" in [d.action for d in bought.deferred]
    angry = apply_event(bought.state, event("ni", 3, "complaint", at(1, 1)), quiet_model)
    assert "angry" in angry.state.traits
    assert [a.action for a in angry.actions] == ["support_escalation_apology"]  # service: at once, at night
    morning = advance(angry.state, ts(1, 8), quiet_model)
    [mood] = [s for s in morning.suppressed if s.action == "urgency_promotion"]
    assert (mood.kind, mood.reason) == ("mood", "no promotion while the customer is angry")
    assert "urgency_promotion" not in morning.state.actions_sent
    assert "urgency_promotion" not in [a.action for a in morning.actions]


# --------------------------------------------------------------------------- explain and the profile


def test_explain_and_the_profile_show_a_waiting_action(quiet_model):
    import io

    import jsonschema
    import yaml
    from rich.console import Console

    from streams.explain import render_customer, render_types
    from streams.profile import build_profile

    state = apply_event(None, event("ol", 1, "page_view", at(0, 23)), quiet_model).state
    [(_, _, _, change_id, _)] = state.deferred
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    render_customer(console, state, [], quiet_model)
    render_types(console, quiet_model)
    text = out.getvalue()
    assert "lead_nurture_sequence (deferred)" in text
    assert (
        "deferred until 2026-03-03 08:00 (quiet hours): decided 2026-03-02 23:00 on entering lifecycle.prospect" in text
    )
    assert "quiet hours 21:00–08:00 local time, in Europe/Lisbon" in text
    assert "next look without an event: 2026-03-03 08:00" in text
    assert "Quiet hours: 21:00–08:00 in each customer's local time" in text

    profile = build_profile(state, [], quiet_model)
    assert profile["timezone"] == "Europe/Lisbon"
    assert profile["next_check_at"] == "2026-03-03T08:00:00.000Z"
    assert profile["actions"]["deferred"] == [
        {
            "action": "lead_nurture_sequence",
            "until": "2026-03-03T08:00:00.000Z",
            "decided_at": "2026-03-02T23:00:00.000Z",
            "triggered_by": change_id,
        }
    ]
    openapi = yaml.safe_load((Path(__file__).resolve().parents[3] / "streams" / "http" / "openapi.yaml").read_text())
    schema = {"$ref": "#/components/schemas/Profile", "components": openapi["components"]}
    jsonschema.Draft202012Validator(schema).validate(profile)

    released = advance(state, ts(1, 8), quiet_model).state
    superseded = apply_event(state, event("ol", 2, "purchase", at(1, 2)), quiet_model)
    gone = advance(superseded.state, ts(1, 8), quiet_model).state
    assert build_profile(released, [], quiet_model)["actions"]["deferred"] == []
    [kinds] = [[s["kind"] for s in build_profile(gone, [], quiet_model)["actions"]["suppressed"]]]
    assert kinds == ["superseded"]


def test_the_replay_report_counts_deferrals_and_superseded_actions(quiet_model, tmp_path):
    import io
    import json

    from rich.console import Console

    from streams.imports.records import SourceRecord
    from streams.replay.run import run_replay

    steps = [
        event("pa", 1, "page_view", at(0, 23)),  # prospect at night: the lead-nurture sequence waits
        event("pa", 2, "purchase", at(1, 2)),  # new (and efficient) before morning: it is superseded
        event("qu", 1, "page_view", at(1, 12)),  # by day: sent at once
    ]
    records = [SourceRecord("t.jsonl", n, event=e) for n, e in enumerate(steps, start=1)]
    report = run_replay(records, quiet_model, until=ts(2, 12), out_dir=tmp_path / "out")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["actions_deferred"] == {
        "concise_options_summary": 1,
        "lead_nurture_sequence": 1,
        "welcome_onboarding": 1,
    }
    assert summary["actions_sent"] == {
        "concise_options_summary": 1,
        "lead_nurture_sequence": 1,
        "welcome_onboarding": 1,
    }
    [why] = [r for r in summary["suppressed_per_reason"] if r["action"] == "lead_nurture_sequence"]
    assert why["reason"].startswith("superseded: the customer is no longer prospect")
    lines = (tmp_path / "out" / "actions.jsonl").read_text().splitlines()
    assert [(a["customer_id"], a["action"], a["at"]) for a in map(json.loads, lines)] == [
        ("pa", "welcome_onboarding", "2026-03-03T08:00:00Z"),
        ("pa", "concise_options_summary", "2026-03-03T08:00:00Z"),
        ("qu", "lead_nurture_sequence", "2026-03-03T12:00:00Z"),
    ]
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(report.action_table())
    assert "deferred (quiet hours)" in out.getvalue()


def test_a_lapsed_customers_last_win_back_waits_and_is_still_sent(quiet_model):
    """One purchase at 23:00; time alone makes them at risk (day 30) and lapsed (day 180), each at 23:00 UTC
    (midnight in Lisbon's summer time). The last win-back marks itself sent when decided, which must not
    stop it at its own release."""
    state = apply_event(None, event("ro", 1, "purchase", at(0, 23)), quiet_model).state
    out = advance(state, ts(200, 12), quiet_model)
    assert [c.to for c in out.changes if c.dimension == "lifecycle"] == ["at_risk", "lapsed"]
    [last] = [a for a in out.actions if a.action == "last_win_back"]
    assert last.at == at(181, 7)  # 08:00 in Lisbon, UTC+1 in August
    assert last.params["deferred_from"] == "2026-08-29T23:00:00Z"
    assert out.state.final_win_back_at == ts(180, 23) and out.state.deferred == []
    assert not [s for s in out.suppressed if s.action == "last_win_back"]
