"""Consent and holdouts on a real Tansu broker and a real redis-server: a held-out action reaches the
holdouts topic (with the id the pure core gives it, `held_out: true`) and never the actions topic; an
unsubscribed loyal customer's invite is suppressed, with the consent kept in their state in Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from journeys import event

from schemas import TouchpointEvent
from streams.core import apply_event
from streams.core.model import load_model
from streams.core.playbook.playbook import DEFAULT_PLAYBOOK_FILE

pytestmark = pytest.mark.integration

LEAD = "lead_nurture_sequence:       {channel: email, priority: normal, kind: marketing, cooldown_days: 14,"
DAY0 = datetime(2026, 3, 2, 10, tzinfo=UTC)


def holdout_playbook(tmp_path: Path) -> Path:
    """The shipped playbook with half the customers held out of the lead-nurture sequence."""
    text = DEFAULT_PLAYBOOK_FILE.read_text()
    assert LEAD in text
    path = tmp_path / "holdout-playbook.yaml"
    path.write_text(text.replace(LEAD, LEAD + " holdout: 0.5,", 1))
    return path


def test_held_out_actions_go_to_the_holdouts_topic_and_consent_suppresses_marketing(deploy, tmp_path, engine):
    playbook = holdout_playbook(tmp_path)
    salt = "integration-salt"
    d = deploy(JOURNEY_CLOCK="event", JOURNEY_PLAYBOOK_FILE=str(playbook), JOURNEY_HOLDOUT_SALT=salt)
    model = load_model(playbook_file=playbook, holdout_salt=salt)
    views = [event(f"h{i:02d}", 1, "page_view", DAY0 + timedelta(minutes=i)) for i in range(30)]
    unsubscribe = {**event("una", 1, "page_view", DAY0), "touchpoint": "unsubscribe", "channel": "email"}
    unsubscribe["payload"] = {"kind": "consent", "channel": "email", "source": "list_unsubscribe"}
    unsubscribed = [
        unsubscribe,
        *(event("una", 2 + i, "purchase", DAY0 + timedelta(days=1 + 5 * i)) for i in range(3)),
    ]
    # what the pure core decides: per customer, the lead-nurture sequence sent or held out
    want_held, want_sent = {}, {}
    for message in views:
        out = apply_event(None, TouchpointEvent.model_validate(message), model)
        for action in out.held_out:
            want_held[action.action_id] = action.model_dump(mode="json")
        for action in out.actions:
            want_sent[action.action_id] = action.model_dump(mode="json")
    assert 5 <= len(want_held) <= 25 and len(want_held) + len(want_sent) == 30

    d.produce(views + unsubscribed)
    worker = d.start_worker()
    d.wait_caught_up(timeout=90)
    d.wait_stat(worker, "held_out", len(want_held), timeout=30)

    held = d.read(d.settings.topic_holdouts)
    assert len(held) == len(want_held), "a held-out action was published twice, or one is missing"
    assert {a["action_id"]: a for a in held} == want_held
    assert all(a["held_out"] is True for a in held)
    actions = d.actions()
    assert not set(want_held) & {a["action_id"] for a in actions}, "a held-out action reached the actions topic"
    assert set(want_sent) <= {a["action_id"] for a in actions}

    una = [a["action"] for a in actions if a["customer_id"] == "una"]
    assert "loyalty_programme_invite" not in una and "welcome_onboarding" not in una
    assert [c["to"] for c in d.changes() if c["customer_id"] == "una" and c["dimension"] == "lifecycle"][-1] == "loyal"
    state = d.states()["una"]
    assert state["consent"] == {"email": (False, DAY0.timestamp(), "list_unsubscribe")}
    assert any(reason.startswith("no consent:") for _, _, reason in state["suppressed_log"])
    assert d.stat(worker, "held_out") == len(want_held)
