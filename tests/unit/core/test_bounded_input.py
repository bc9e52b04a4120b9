"""Every field of an input message is bounded and strictly typed: what a float, a sum or the Redis record
cannot hold is dead-lettered with the field's name, never applied.

`amount: Infinity` (or `1e309`, a 400-digit integer, two purchases of `1e308`) was summed into a
state, which Redis then held as JSON null and no worker could read again.
"""

from __future__ import annotations

import json
import math

import pytest

from schemas import TouchpointEvent
from schemas.touchpoint import MAX_AMOUNT
from streams.core import CustomerState, apply_event
from streams.core.intake import RawMessage, decode
from streams.core.model import load_model
from streams.core.money import load_money
from streams.settings import Settings

MAX_BYTES = Settings.model_fields["max_message_bytes"].default
MODEL = load_model()


def _event(event_id: str = "e1", day: int = 1, **payload: object) -> dict:
    return {
        "event_id": event_id,
        "customer_id": "c1",
        "occurred_at": f"2026-03-{day:02d}T10:00:00Z",
        "stage": "purchase",
        "touchpoint": "purchase",
        "channel": "web",
        "payload": {"kind": "order", "amount": 12.5, "currency": "EUR", **payload},
    }


def _support(**payload: object) -> dict:
    return {
        **_event(),
        "stage": "post_purchase",
        "touchpoint": "support_ticket",
        "payload": {"kind": "support", **payload},
    }


def _survey(**payload: object) -> dict:
    return {
        **_event(),
        "stage": "post_purchase",
        "touchpoint": "survey_response",
        "payload": {"kind": "score", **payload},
    }


def _decoded(text: str) -> TouchpointEvent | str:
    return decode(RawMessage("journey.touchpoints", 0, 1, b"c1", text.encode()), MAX_BYTES)


def _with(data: dict, field: str, literal: str) -> str:
    """The JSON of `data` with `field`'s value replaced by literal JSON text (which json.dumps may not write)."""
    marker = "__VALUE__"
    where = data if field in data else data["payload"]
    where[field] = marker
    return json.dumps(data).replace(f'"{marker}"', literal)


HOSTILE = [
    # (event, field, JSON literal, what the reason must say)
    (_event(), "amount", "Infinity", "finite"),
    (_event(), "amount", "-Infinity", "finite"),
    (_event(), "amount", "NaN", "finite"),
    (_event(), "amount", "1e309", "finite"),
    (_event(), "amount", "9" * 400, "finite"),
    (_event(), "amount", "1e308", "less than or equal"),
    (_event(), "amount", '"12.50"', "valid number"),
    (_event(), "amount", "true", "valid number"),
    (_event(), "discount", "Infinity", "finite"),
    (_event(), "discount", '"5"', "valid number"),
    (_support(), "wait_seconds", "Infinity", "finite"),
    (_support(), "wait_seconds", "1e300", "less than or equal"),
    (_support(), "sentiment", "NaN", "finite"),
    (_survey(), "csat", "true", "valid integer"),
    (_survey(), "csat", '"3"', "valid integer"),
    (_survey(), "nps", "9" * 400, "less than or equal"),
    (_survey(), "sentiment", '"0.5"', "valid number"),
]


@pytest.mark.parametrize("data,field,literal,says", HOSTILE, ids=[f"{f}={lit[:12]}" for _, f, lit, _ in HOSTILE])
def test_a_number_no_float_or_range_holds_is_dead_lettered_naming_its_field(data, field, literal, says):
    result = _decoded(_with(dict(data, payload=dict(data["payload"])), field, literal))
    assert isinstance(result, str), f"{field}={literal[:20]} was accepted: {result!r}"
    assert f"payload.{data['payload']['kind']}.{field}" in result and says in result, result


@pytest.mark.parametrize("event_id", ["ab\x00c", "line\nbreak", "\x1b[31mred", "del\x7f"])
def test_an_event_id_with_control_characters_is_refused_like_a_customer_id(event_id):
    result = _decoded(json.dumps(_event(event_id=event_id)))
    assert isinstance(result, str) and "event_id" in result, result


@pytest.mark.parametrize("when", ["1969-12-31T23:59:59Z", "3000-01-01T00:00:00Z", "9999-12-31T23:59:59-14:00"])
def test_an_event_time_outside_the_format_is_refused(when):
    """Past year 9999 (in UTC) a time could not even be written as a change's `at`."""
    result = _decoded(json.dumps({**_event(), "occurred_at": when}))
    assert isinstance(result, str) and "occurred_at" in result, result


def test_two_purchases_of_1e308_cannot_make_an_unreadable_state():
    """The old code summed them to inf, wrote `"sp":null` and could not read the record back."""
    state = None
    for day in (1, 2):
        result = _decoded(_with(_event(f"big-{day}", day), "amount", "1e308"))
        if isinstance(result, TouchpointEvent):
            state = apply_event(state, result, MODEL).state
    assert state is None or CustomerState.from_json(state.to_json()) == state


def test_the_largest_amounts_the_settings_allow_keep_the_total_finite():
    """Per-field bounds: even orders of the largest amount never add up past what a float holds."""
    model = load_model(money=load_money("EUR", None, float(MAX_AMOUNT)))
    state = None
    for n in range(50):
        event = _decoded(_with(_event(f"max-{n}", 1 + n % 28), "amount", str(MAX_AMOUNT)))
        assert isinstance(event, TouchpointEvent), event
        state = apply_event(state, event, model, in_place=True).state
    assert state is not None and state.purchases == 50 and math.isfinite(state.total_spend)
    assert CustomerState.from_json(state.to_json()) == state


@pytest.mark.parametrize("value", ["0", "-1", "1e16", "inf", "nan"])
def test_the_largest_order_amount_setting_is_bounded(value, monkeypatch):
    monkeypatch.setenv("JOURNEY_MAX_ORDER_AMOUNT", value)
    with pytest.raises(ValueError, match="max_order_amount"):
        Settings()


def test_numbers_in_range_of_either_json_type_are_taken():
    """Strict is not fussy: an integer amount is the float it is, and each bound itself is inside."""
    event = _decoded(_with(_event(), "amount", str(MAX_AMOUNT)))
    assert isinstance(event, TouchpointEvent) and event.payload.amount == MAX_AMOUNT
    event = _decoded(json.dumps(_support(wait_seconds=365 * 86400, sentiment=-1)))
    assert isinstance(event, TouchpointEvent) and event.payload.wait_seconds == 365 * 86400
    event = _decoded(json.dumps(_survey(csat=5, nps=0, ces=7, rating=1, sentiment=1.0)))
    assert isinstance(event, TouchpointEvent) and event.payload.nps == 0
