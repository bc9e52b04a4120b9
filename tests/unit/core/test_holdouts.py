"""Holdout groups: who is held out is a stable, documented hash of (customer id, action, salt); the share over
many customers is the playbook's within binomial tolerance; a held-out action is not sent but kept for the
holdouts topic with the id and fields it would have had, and counts for cooldowns and the cap; the replay
writes it to holdouts.jsonl. The settings' salt is checked and kept out of logs.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from schemas import STAGE_OF, HeldOutAction, NurtureAction, Touchpoint, TouchpointEvent
from streams.core import advance, apply_event
from streams.core.model import load_model
from streams.core.playbook.playbook import DEFAULT_HOLDOUT_SALT, DEFAULT_PLAYBOOK_FILE, holdout_draw
from streams.imports.records import SourceRecord
from streams.profile import build_profile
from streams.replay.run import run_replay
from streams.settings import Settings

D0 = datetime(2026, 3, 2, 10, tzinfo=UTC)
LEAD = "lead_nurture_sequence:       {channel: email, priority: normal, kind: marketing, cooldown_days: 14,"


def playbook_with(tmp_path: Path, share: float, extra: str = "") -> Path:
    text = DEFAULT_PLAYBOOK_FILE.read_text()
    assert LEAD in text
    text = text.replace(LEAD, LEAD + f" holdout: {share},", 1)
    if extra:
        text = text.replace("\nsuppress:", f"\n{extra}\nsuppress:", 1)
    path = tmp_path / f"playbook-{share}.yaml"
    path.write_text(text)
    return path


def page_view(customer: str, when: datetime = D0, n: int = 1, **extra) -> TouchpointEvent:
    return TouchpointEvent(
        event_id=f"{customer}:{n}",
        customer_id=customer,
        occurred_at=when,
        stage=STAGE_OF[Touchpoint.PAGE_VIEW],
        touchpoint=Touchpoint.PAGE_VIEW,
        channel="web",
        **extra,
    )


def test_the_draw_is_the_documented_hash():
    """BLAKE2b, 8-byte digest, keyed by the salt, over `customer_id NUL action`, big-endian over 2**64: anyone
    can compute a customer's group from the README's description (and the salt)."""
    digest = hashlib.blake2b(b"alice\x00loyalty_programme_invite", digest_size=8, key=b"s3cret").digest()
    assert holdout_draw("s3cret", "alice", "loyalty_programme_invite") == int.from_bytes(digest, "big") / 2**64
    assert holdout_draw("s3cret", "alice", "a") != holdout_draw("s3cret", "alice", "b"), "per action"
    # the NUL keeps ("ab", "c") and ("a", "bc") apart
    assert holdout_draw("s", "ab", "c") != holdout_draw("s", "a", "bc")


def test_the_share_over_10000_customers_is_within_binomial_tolerance_stable_and_salted(tmp_path):
    """At 0.1 over 10,000 customers the count held out is Binomial(10000, 0.1): mean 1,000, sigma 30, so
    880-1,120 (4 sigma). The same customers every time; another salt draws another group of the same size."""
    path = playbook_with(tmp_path, 0.1)
    ids = [f"customer-{i:05d}" for i in range(10_000)]

    def group(salt: str) -> set[str]:
        playbook = load_model(playbook_file=path, holdout_salt=salt).playbook
        return {c for c in ids if playbook.held_out(c, "lead_nurture_sequence")}

    first = group(DEFAULT_HOLDOUT_SALT)
    assert 880 <= len(first) <= 1_120, len(first)
    assert group(DEFAULT_HOLDOUT_SALT) == first, "stable across runs (a new playbook, the same answer)"
    other = group("another-salt")
    assert 880 <= len(other) <= 1_120, len(other)
    assert other != first
    # Independent draws: the overlap of two 10 % groups is about 1 % of the customers (100, sigma ~10).
    assert 40 <= len(first & other) <= 160, len(first & other)
    # Other actions have no holdout: nobody is held out of them.
    playbook = load_model(playbook_file=path).playbook
    assert not any(playbook.held_out(c, "welcome_onboarding") for c in ids[:500])


def _held_and_kept(model, count: int = 400) -> tuple[str, str]:
    """A customer id held out of the lead-nurture sequence, and one who is not."""
    held = [f"c{i}" for i in range(count) if model.playbook.held_out(f"c{i}", "lead_nurture_sequence")]
    kept = [f"c{i}" for i in range(count) if not model.playbook.held_out(f"c{i}", "lead_nurture_sequence")]
    return held[0], kept[0]


def test_a_held_out_action_is_not_sent_but_kept_with_its_id_and_counts_as_sent(tmp_path):
    model = load_model(playbook_file=playbook_with(tmp_path, 0.5))
    held, kept = _held_and_kept(model)

    out = apply_event(None, page_view(held), model)
    assert out.actions == []
    [action] = out.held_out
    assert isinstance(action, HeldOutAction) and action.held_out is True
    plain = apply_event(None, page_view(held), load_model()).actions[0]  # the same customer, no holdout
    assert action.model_dump(exclude={"held_out"}) == plain.model_dump()
    assert json.loads(action.model_dump_json())["held_out"] is True
    # It counts as sent: the cooldown holds it, and it has its place in the weekly cap.
    assert out.state.actions_sent["lead_nurture_sequence"] == D0.timestamp()
    assert out.state.marketing_log == [D0.timestamp()]
    profile = build_profile(out.state, [], model)
    assert profile["actions"]["sent"] == [
        {"action": "lead_nurture_sequence", "last_sent": "2026-03-02T10:00:00.000Z", "held_out": True}
    ]

    other = apply_event(None, page_view(kept), model)
    assert [a.action for a in other.actions] == ["lead_nurture_sequence"] and other.held_out == []
    assert type(other.actions[0]) is NurtureAction
    assert build_profile(other.state, [], model)["actions"]["sent"][0]["held_out"] is False


def test_a_held_out_action_deferred_by_the_quiet_hours_is_held_out_at_its_release(tmp_path):
    model = load_model(playbook_file=playbook_with(tmp_path, 0.5, 'quiet_hours: {from: "21:00", to: "08:00"}'))
    held, _ = _held_and_kept(model)
    night = datetime(2026, 3, 2, 23, tzinfo=UTC)
    first = apply_event(None, page_view(held, night, country="PT"), model)
    assert (
        first.actions == [] and first.held_out == [] and [d.action for d in first.deferred] == ["lead_nurture_sequence"]
    )
    morning = advance(first.state, (night + timedelta(hours=10)).timestamp(), model)
    assert morning.actions == []
    [action] = morning.held_out
    assert action.params["deferred_from"] == "2026-03-02T23:00:00Z" and action.at == night + timedelta(hours=9)


def test_the_replay_writes_held_out_actions_to_holdouts_jsonl(tmp_path):
    model = load_model(playbook_file=playbook_with(tmp_path, 0.5))
    events = [page_view(f"r{i}", D0 + timedelta(minutes=i)) for i in range(200)]
    records = [SourceRecord("in.jsonl", i + 1, event=e) for i, e in enumerate(events)]
    report = run_replay(records, model, out_dir=tmp_path / "out")
    held = [json.loads(line) for line in (tmp_path / "out" / "holdouts.jsonl").read_text().splitlines()]
    sent = [json.loads(line) for line in (tmp_path / "out" / "actions.jsonl").read_text().splitlines()]
    expected = {f"r{i}" for i in range(200) if model.playbook.held_out(f"r{i}", "lead_nurture_sequence")}
    assert {a["customer_id"] for a in held} == expected and 60 <= len(expected) <= 140
    assert all(a["held_out"] is True and a["action"] == "lead_nurture_sequence" for a in held)
    assert not expected & {a["customer_id"] for a in sent if a["action"] == "lead_nurture_sequence"}
    assert report.actions_held_out == {"lead_nurture_sequence": len(expected)}
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["actions_held_out"] == {"lead_nurture_sequence": len(expected)}


@pytest.mark.parametrize("share", [-0.1, 1.5, "lots"])
def test_a_holdout_share_outside_0_to_1_stops_the_worker(tmp_path, share):
    from streams.core.playbook.playbook import PlaybookError

    with pytest.raises(PlaybookError) as info:
        load_model(playbook_file=playbook_with(tmp_path, share))  # type: ignore[arg-type]
    assert "holdout" in str(info.value)


def test_the_salt_setting_is_checked_and_kept_out_of_logs(monkeypatch):
    monkeypatch.setenv("JOURNEY_HOLDOUT_SALT", "x" * 65)
    with pytest.raises(ValidationError):
        Settings()
    monkeypatch.setenv("JOURNEY_HOLDOUT_SALT", "a-private-salt")
    settings = Settings()
    assert "a-private-salt" in settings.secrets() and "a-private-salt" not in repr(settings)
    assert settings.load_model().playbook.holdout_salt == "a-private-salt"
    monkeypatch.delenv("JOURNEY_HOLDOUT_SALT")
    assert Settings().load_model().playbook.holdout_salt == DEFAULT_HOLDOUT_SALT


def test_explain_marks_a_held_out_action_and_types_shows_the_share(tmp_path):
    from rich.console import Console

    from streams.explain import render_customer, render_types

    model = load_model(playbook_file=playbook_with(tmp_path, 0.5))
    held, _ = _held_and_kept(model)
    state = apply_event(None, page_view(held), model).state
    console = Console(record=True, width=200)
    render_customer(console, state, [], model)
    assert "lead_nurture_sequence (held out) │ 2026-03-02 10:00: to the holdouts topic instead" in console.export_text()
    wide = Console(record=True, width=400)
    render_types(wide, model)
    text = wide.export_text()
    assert "lead_nurture_sequence (marketing, email, cooldown 14 d, holdout 50%)" in text
    assert text.count("holdout") == 1, "only the action with a holdout names one"
