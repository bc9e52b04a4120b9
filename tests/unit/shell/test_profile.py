"""`streams.profile.build_profile`: what explain shows of a customer, as JSON-ready data (Alice's known journey)."""

from __future__ import annotations

import json
from datetime import datetime

from journeys import alice

from streams.profile import _plain, build_profile, when


def test_the_profile_tells_alices_journey():
    state, history, model, _ = alice()
    profile = build_profile(state, history, model)
    json.dumps(profile, allow_nan=False)  # plain JSON: no NaN, no infinity, no objects

    assert profile["customer_id"] == "alice"
    assert profile["lifecycle"] == {"type": "loyal", "since": "2026-04-05T09:00:00.000Z"}
    assert profile["traits"] == [{"type": "efficient", "since": "2026-01-06T09:00:00.000Z"}]
    assert profile["judged_at"] == "2026-04-05T09:00:00.000Z"
    assert profile["rules_source"] == "default.yaml" and profile["playbook_source"] == "default.yaml"
    # the rules that hold now, with their evidence; the first in precedence decides
    rules = {r["rule"]: r for r in profile["rules"]}
    assert rules["lifecycle.loyal"] == {"rule": "lifecycle.loyal", "decides": True, "evidence": {"purchases": 4}}
    assert [r["rule"] for r in profile["rules"] if r["decides"]] == ["lifecycle.loyal"]
    assert rules["trait.efficient"]["evidence"]["purchases"] == 4
    # the stored history, newest first
    changes = profile["changes"]
    assert [(c["from"], c["to"], c["caused_by"]) for c in changes if c["dimension"] == "lifecycle"] == [
        ("at_risk", "loyal", "alice-5"),
        ("loyal", "at_risk", "inactivity@2026-02-15T09:00:00Z"),
        ("new", "loyal", "alice-4"),
        ("prospect", "new", "alice-2"),
        (None, "prospect", "alice-1"),
    ]
    at_risk = changes[1]
    assert at_risk["rule"] == "lifecycle.at_risk"
    assert at_risk["evidence"]["days_since_last_purchase"] == 30.0
    assert [c["change_id"] for c in changes] == [h["change_id"] for h in history]
    # sent (still counting for cooldowns) and suppressed, with the suppression's kind
    actions = profile["actions"]
    assert [a["action"] for a in actions["sent"]] == ["win_back_offer", "loyalty_programme_invite"]
    [suppressed] = actions["suppressed"]
    assert suppressed["action"] == "loyalty_programme_invite" and suppressed["kind"] == "cooldown"
    assert suppressed["reason"].startswith("cooldown: sent 79.0 days ago")
    assert actions["suppressed_total"] == 1


def test_values_json_cannot_carry_become_null():
    assert _plain({"age": float("inf"), "n": [1.5, float("nan")], "ok": 2}) == {"age": None, "n": [1.5, None], "ok": 2}
    assert when(None) is None
    assert when(0.25) == "1970-01-01T00:00:00.250Z"


def test_the_profile_from_what_redis_stores_shows_the_same_names():
    """Redis holds codes (streams/core/codes.py); the profile, like explain, shows the names, as before them."""
    from schemas import TypeChange
    from streams.core import CustomerState
    from streams.store.history import entry, read

    state, history, model, _ = alice()
    stored_state = state.to_json()
    stored_history = [entry(TypeChange.model_validate(change)) for change in history]
    assert b"loyal" not in stored_state and not any(b"loyal" in raw for raw in stored_history)
    from_redis = build_profile(
        CustomerState.from_json(stored_state), [read(raw, "alice") for raw in stored_history], model
    )
    direct = build_profile(state, history, model)
    for change in from_redis["changes"] + direct["changes"]:  # times are kept to the ms, written out in µs
        change["at"] = datetime.fromisoformat(change["at"])
    assert from_redis == direct
