"""The guarded clock's pure parts: which event times are accepted, and time formatting that never overflows."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from schemas import TouchpointEvent
from streams.core import CustomerState, advance, apply_event, next_due
from streams.core.engine import LATEST_INSTANT, instant, iso
from streams.core.model import load_model
from streams.core.timeguard import DEFAULT_EARLIEST, LATEST_EVENT, TOO_EARLY, TOO_LATE, TimeGuard
from streams.settings import Settings

MODEL = load_model()
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC).timestamp()


def purchase(event_id: str, at: datetime) -> TouchpointEvent:
    return TouchpointEvent.model_validate(
        {
            "event_id": event_id,
            "customer_id": "c1",
            "occurred_at": at.isoformat(),
            "stage": "purchase",
            "touchpoint": "purchase",
            "channel": "web",
            "payload": {"kind": "order", "amount": 20, "currency": "EUR"},
        }
    )


def test_the_settings_defaults_are_the_guards():
    settings = Settings()
    assert settings.max_event_ahead_s == 300
    assert settings.earliest_event_time == DEFAULT_EARLIEST == datetime(2000, 1, 1, tzinfo=UTC)
    assert settings.time_guard() == TimeGuard()


def test_events_up_to_the_tolerance_ahead_are_accepted_and_later_ones_refused():
    guard = TimeGuard(max_ahead_s=300)
    assert guard.refusal(NOW, NOW) is None
    assert guard.refusal(NOW + 300, NOW) is None
    late = guard.refusal(NOW + 300.001, NOW)
    assert late is not None and late.startswith(TOO_LATE)
    assert "JOURNEY_MAX_EVENT_AHEAD_S" in late and iso(NOW) in late and iso(NOW + 300.001) in late
    far = guard.refusal(datetime(2100, 1, 1, tzinfo=UTC).timestamp(), NOW)
    assert far is not None and far.startswith(TOO_LATE) and "2100-01-01" in far


def test_events_before_the_floor_are_refused_whatever_the_instant():
    guard = TimeGuard(earliest=datetime(2010, 1, 1, tzinfo=UTC).timestamp())
    assert guard.refusal(datetime(2010, 1, 1, tzinfo=UTC).timestamp(), NOW) is None
    for then in (datetime(2009, 12, 31, 23, 59, tzinfo=UTC), datetime(1970, 1, 1, tzinfo=UTC)):
        for now in (NOW, None):
            early = guard.refusal(then.timestamp(), now)
            assert early is not None and early.startswith(TOO_EARLY) and "JOURNEY_EARLIEST_EVENT_TIME" in early


def test_without_an_instant_only_the_fixed_bounds_apply():
    guard = TimeGuard()
    assert guard.refusal(datetime(2100, 1, 1, tzinfo=UTC).timestamp(), None) is None
    beyond = guard.refusal(LATEST_EVENT.timestamp() + 1, None)
    assert beyond is not None and beyond.startswith(TOO_LATE) and "latest event time ever accepted" in beyond
    # The fixed ceiling holds even for an instant later than it.
    assert guard.refusal(LATEST_EVENT.timestamp() + 1, LATEST_EVENT.timestamp() + 3600) is not None


@pytest.mark.parametrize("ts", [1e20, -1e20, LATEST_INSTANT + 1, math.inf, -math.inf, math.nan])
def test_formatting_a_time_never_raises(ts):
    """Past year 9999 `datetime.fromtimestamp` raises: one such due time used to fail every sweep."""
    text = iso(ts)
    assert text.endswith("Z") and (text.startswith("9999-12-31") or text.startswith("0001-01-01"))
    assert instant(ts).tzinfo is UTC


def unchecked_purchase(event_id: str, at: datetime) -> TouchpointEvent:
    """A purchase at a time the message format refuses (it takes none after 2999): for the engine's own
    defence, should an event ever reach it unchecked."""
    event = purchase(event_id, datetime(2026, 1, 1, tzinfo=UTC)).model_copy(update={"occurred_at": at})
    event.__dict__["occurred_ts"] = at.timestamp()
    return event


def test_no_due_time_is_scheduled_past_what_a_datetime_holds():
    """An event near year 9999, had it reached the engine, leaves no unformattable due time."""
    with pytest.raises(ValueError, match="outside the times the format takes"):
        purchase("p0", datetime(8999, 12, 1, tzinfo=UTC))
    state = apply_event(None, unchecked_purchase("p1", datetime(8999, 12, 1, tzinfo=UTC)), MODEL).state
    assert next_due(state) is not None  # a purchase in year 8999 still has a representable at-risk time
    # Two purchases a thousand years apart: three times that rhythm would lie past year 9999.
    state = apply_event(None, purchase("p1", datetime(2020, 1, 1, tzinfo=UTC)), MODEL).state
    state = apply_event(state, unchecked_purchase("p2", datetime(8990, 1, 1, tzinfo=UTC)), MODEL).state
    due = next_due(state)
    assert due is None or due <= LATEST_INSTANT
    advance(state, LATEST_INSTANT, MODEL)  # and time can run to the end without raising


def test_a_stored_due_time_past_year_9999_advances_without_raising():
    """A state written before due times were bounded (its due time past 9999) is advanced, not a crash."""
    state = apply_event(None, purchase("p1", datetime(2026, 1, 1, tzinfo=UTC)), MODEL).state
    state = CustomerState.from_json(state.to_json())
    state.due_at = LATEST_INSTANT + 10 * 86_400
    out = advance(state, LATEST_INSTANT + 20 * 86_400, MODEL)
    for change in out.changes:
        assert change.at.year == 9999 and change.caused_by.startswith("inactivity@9999-12-31")


def test_the_guard_is_the_same_for_a_replay_and_the_worker():
    """The worker's bounds at wall time W are the replay's at --now W: one function decides."""
    guard = Settings(max_event_ahead_s=60).time_guard()
    for offset in (-1e9, -1, 0, 59.999, 60, 60.001, 1e9):
        ts = NOW + offset
        earliest, latest = guard.bounds(NOW)
        assert (guard.refusal(ts, NOW) is None) == (earliest <= ts <= latest)
    assert guard.bounds(NOW) == (DEFAULT_EARLIEST.timestamp(), NOW + 60)
    assert guard.bounds(NOW - timedelta(days=1).total_seconds())[1] == NOW - 86_400 + 60
