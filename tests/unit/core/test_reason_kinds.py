"""The fixed words metrics count reasons by: every reason the core can give maps to its own kind, never `other`."""

from __future__ import annotations

import pytest

from streams.core.intake import RawMessage, decode
from streams.core.model import load_model
from streams.core.playbook.playbook import DAY, SUPPRESSION_KINDS, Suppressed, suppression_kind
from streams.core.reasons import INTERNAL, LABELS, QUARANTINED
from streams.core.reasons import label as reason_kind
from streams.core.state import CustomerState
from streams.core.timeguard import TOO_EARLY, TOO_LATE
from streams.local import sample

MODEL = load_model()
NOW = 1_800_000_000.0


def _reason(state: CustomerState, action: str) -> str | None:
    playbook = MODEL.playbook
    return playbook._reason_to_suppress(state, action, playbook.actions[action], NOW)


def _state(**fields) -> CustomerState:
    return CustomerState(customer_id="c", first_seen=NOW - 100 * DAY, last_seen=NOW, **fields)


@pytest.mark.parametrize(
    ("state", "action", "kind"),
    [
        (_state(actions_sent={"welcome_onboarding": NOW - DAY}), "welcome_onboarding", "cooldown"),
        (_state(lifecycle="lapsed"), "win_back_offer", "lapsed"),
        (_state(lifecycle="lapsed", final_win_back_at=NOW - 400 * DAY), "last_win_back", "lapsed"),
        (_state(traits={"angry": NOW}), "win_back_offer", "mood"),
        (_state(marketing_log=[NOW - 3 * DAY, NOW - 2 * DAY, NOW - DAY]), "welcome_onboarding", "frequency_cap"),
    ],
)
def test_every_suppression_reason_has_its_kind(state, action, kind):
    reason = _reason(state, action)
    assert reason is not None
    assert suppression_kind(reason) == kind
    assert Suppressed(action, reason).kind == kind
    assert kind in SUPPRESSION_KINDS.values()


def test_a_reason_worded_elsewhere_is_other():
    assert suppression_kind("because") == "other"


def _raw(key: bytes | None, value: bytes | None) -> RawMessage:
    return RawMessage("in", 0, 0, key, value)


def test_every_dead_letter_reason_has_its_kind():
    reasons = [decode(_raw(k, v), 65_536) for k, v in sample.bad_messages()]
    kinds = [reason_kind(r) for r in reasons if isinstance(r, str)]
    assert len(kinds) == len(reasons)
    assert kinds == [
        "invalid_json",
        "invalid_event",
        "invalid_event",
        "invalid_event",
        "invalid_event",
        "invalid_event",
        "too_large",
        "missing_key",
    ]
    empty = decode(_raw(b"c", b""), 100)
    assert isinstance(empty, str) and reason_kind(empty) == "empty_value"
    good = sample.bad_messages()[1][1].replace(b'"channel": 42', b'"channel": "web"')
    mismatch = decode(_raw(b"someone-else", good), 65_536)
    assert isinstance(mismatch, str) and reason_kind(mismatch) == "key_mismatch", mismatch
    assert reason_kind(f"{INTERNAL}: KeyError('x')") == "internal_error"
    assert reason_kind(f"{TOO_LATE}: 2100-01-01T00:00:00Z is after …") == "event_time"
    assert reason_kind(f"{TOO_EARLY}: 1999-01-01T00:00:00Z is before …") == "event_time"
    assert reason_kind(f"{QUARANTINED}: their state cannot be read") == "quarantined"
    assert reason_kind("conflict: event_id 'e1' was already applied") == "conflict"
    assert reason_kind("payload.currency: no rate from JPY to EUR in no rates file") == "no_rate"
    assert set(kinds) | {"empty_value", "key_mismatch", "internal_error"} <= set(LABELS)
