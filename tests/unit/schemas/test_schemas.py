"""The message contracts: committed JSON Schemas are current, and the pydantic models accept and refuse what they should."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import jsonschema
import pytest
from pydantic import ValidationError

from schemas import (
    CONSENT_KINDS,
    MESSAGE_MODELS,
    STAGE_OF,
    DeadLetter,
    HeldOutAction,
    NurtureAction,
    Stage,
    Touchpoint,
    TouchpointEvent,
    TypeChange,
)
from schemas.__main__ import SCHEMA_DIR, render
from streams.core import apply_event
from streams.core.erasure import audit
from streams.core.intake import RawMessage, dead_letter
from streams.core.model import Model, load_model
from streams.core.playbook.playbook import Playbook

MODEL = load_model()
#: The shipped model with every action held out of every customer: its actions go to the holdouts topic.
_SPEC = MODEL.playbook.spec
HELD_OUT_MODEL = Model(
    MODEL.rules,
    Playbook(
        _SPEC.model_copy(
            update={"actions": {n: a.model_copy(update={"holdout": 1.0}) for n, a in _SPEC.actions.items()}}
        )
    ),
    MODEL.dedupe_window,
    MODEL.money,
)

#: Payloads that make an event of each kind valid when it needs one.
REQUIRED_PAYLOAD = {
    Touchpoint.PURCHASE: {"kind": "order", "amount": 19.9, "currency": "EUR"},
    Touchpoint.SURVEY_RESPONSE: {"kind": "score", "csat": 4, "nps": 9},
    Touchpoint.REVIEW_WRITTEN: {"kind": "score", "rating": 5},
    Touchpoint.CONSENT_GRANTED: {"kind": "consent", "channel": "sms", "source": "signup_form"},
    Touchpoint.CONSENT_REVOKED: {"kind": "consent", "channel": "email"},
    Touchpoint.ERASURE_REQUEST: {"kind": "erasure", "requested_by": "privacy-desk"},
}


def raw_event(touchpoint: Touchpoint = Touchpoint.PAGE_VIEW, **changes) -> dict:
    """A valid touchpoint event as a JSON-ready dict (payload added when the kind needs one)."""
    data = {
        "event_id": f"ev-{touchpoint.value}",
        "customer_id": "cust-1",
        "occurred_at": "2026-03-01T10:00:00+01:00",
        "stage": STAGE_OF[touchpoint].value,
        "touchpoint": touchpoint.value,
        "channel": "web",
    }
    if touchpoint in REQUIRED_PAYLOAD:
        data["payload"] = dict(REQUIRED_PAYLOAD[touchpoint])
    data.update(changes)
    return data


def refused(data: dict) -> str:
    """The validation error text for data that must be refused (fails the test if it is accepted)."""
    with pytest.raises(ValidationError) as info:
        TouchpointEvent.model_validate_json(json.dumps(data))
    return str(info.value)


# --------------------------------------------------------------------------- committed JSON Schemas


@pytest.mark.parametrize("name", sorted(MESSAGE_MODELS))
def test_committed_json_schema_is_current(name):
    """schemas/json/<name>.schema.json is exactly what `python -m schemas` generates from the model."""
    path = SCHEMA_DIR / f"{name}.schema.json"
    assert path.exists(), f"{path} is missing: run `python -m schemas`"
    assert path.read_text() == render(name), f"{path} is stale: run `python -m schemas` and commit the result"


def test_no_stray_schema_files():
    """Every committed schema file belongs to a message model (a renamed model leaves no orphan)."""
    committed = {p.name for p in SCHEMA_DIR.glob("*.schema.json")}
    assert committed == {f"{name}.schema.json" for name in MESSAGE_MODELS}, "run `python -m schemas`"


# --------------------------------------------------------------------------- TouchpointEvent


@pytest.mark.parametrize("touchpoint", list(Touchpoint), ids=lambda t: t.value)
def test_every_touchpoint_kind_with_its_stage_parses(touchpoint):
    """Each of the touchpoint kinds, with the stage it belongs to, is a valid event."""
    event = TouchpointEvent.model_validate_json(json.dumps(raw_event(touchpoint)))
    assert event.touchpoint is touchpoint
    assert event.stage is STAGE_OF[touchpoint]
    assert event.occurred_at == datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def test_stage_table_covers_the_domain():
    """35 kinds of the domain, 3 of consent and the erasure request; a few anchors from the domain file sit in
    the right stage."""
    assert len(Touchpoint) == 39 and set(STAGE_OF) == set(Touchpoint)
    assert STAGE_OF[Touchpoint.AD_CLICK] is Stage.PRE_PURCHASE
    assert STAGE_OF[Touchpoint.TRIAL_START] is Stage.PRE_PURCHASE
    assert STAGE_OF[Touchpoint.PURCHASE] is Stage.PURCHASE
    assert STAGE_OF[Touchpoint.PAYMENT_FAILED] is Stage.PURCHASE
    assert STAGE_OF[Touchpoint.SURVEY_RESPONSE] is Stage.POST_PURCHASE
    assert STAGE_OF[Touchpoint.SUBSCRIPTION_CANCELLED] is Stage.POST_PURCHASE


@pytest.mark.parametrize("touchpoint", list(Touchpoint), ids=lambda t: t.value)
def test_stage_contradicting_the_kind_is_refused(touchpoint):
    """Every wrong stage for a kind is refused, and the error says it contradicts the kind; consent is given
    or withdrawn at any stage."""
    if touchpoint in CONSENT_KINDS or touchpoint is Touchpoint.ERASURE_REQUEST:
        for stage in Stage:
            assert TouchpointEvent.model_validate_json(json.dumps(raw_event(touchpoint, stage=stage.value)))
        return
    for stage in Stage:
        if stage is STAGE_OF[touchpoint]:
            continue
        error = refused(raw_event(touchpoint, stage=stage.value))
        assert "contradicts" in error and touchpoint.value in error


def test_naive_timestamp_is_refused():
    """occurred_at without a timezone is refused."""
    assert "timezone" in refused(raw_event(occurred_at="2026-03-01T10:00:00"))


def test_missing_occurred_at_is_refused():
    data = raw_event()
    del data["occurred_at"]
    assert "occurred_at" in refused(data)


def test_unknown_touchpoint_is_refused():
    data = {**raw_event(), "touchpoint": "telepathy"}
    assert "touchpoint" in refused(data)


@pytest.mark.parametrize("touchpoint", sorted(REQUIRED_PAYLOAD, key=str), ids=str)
def test_kind_that_needs_a_payload_is_refused_without_one(touchpoint):
    """A purchase needs an order; a survey or review needs a score."""
    data = raw_event(touchpoint)
    del data["payload"]
    assert "needs a payload" in refused(data)


@pytest.mark.parametrize(
    "touchpoint,payload",
    [
        (Touchpoint.PURCHASE, {"kind": "score", "csat": 3}),
        (Touchpoint.PURCHASE, {"kind": "support", "topic": "billing"}),
        (Touchpoint.PAGE_VIEW, {"kind": "order", "amount": 1, "currency": "EUR"}),
        (Touchpoint.SUPPORT_TICKET, {"kind": "score", "csat": 3}),
        (Touchpoint.REFUND, {"kind": "support"}),
        (Touchpoint.EMAIL_OPEN, {"kind": "support"}),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_payload_kind_not_allowed_for_the_touchpoint_is_refused(touchpoint, payload):
    """Each kind takes only its own payload kind."""
    assert "payload" in refused(raw_event(touchpoint, payload=payload))


@pytest.mark.parametrize(
    "touchpoint,payload",
    [
        (Touchpoint.SUPPORT_TICKET, {"kind": "support", "topic": "billing", "sentiment": -0.4, "wait_seconds": 30}),
        (Touchpoint.REFUND, {"kind": "order", "amount": 10, "currency": "USD"}),
        (Touchpoint.SUBSCRIPTION_RENEWED, {"kind": "order", "amount": 10, "currency": "USD"}),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_optional_payloads_that_fit_are_accepted(touchpoint, payload):
    event = TouchpointEvent.model_validate_json(json.dumps(raw_event(touchpoint, payload=payload)))
    assert event.payload is not None and event.payload.kind == payload["kind"]


def test_extra_fields_are_refused():
    """Unknown fields, at the top level or inside a payload, are refused (no silent typos)."""
    assert "colour" in refused(raw_event(colour="blue"))
    bad_payload = dict(REQUIRED_PAYLOAD[Touchpoint.PURCHASE], vat=3)
    assert "vat" in refused(raw_event(Touchpoint.PURCHASE, payload=bad_payload))


@pytest.mark.parametrize(
    "changes",
    [
        {"payload": {"kind": "order", "amount": -1, "currency": "EUR"}},
        {"payload": {"kind": "order", "amount": 1, "currency": "eur"}},
        {"payload": {"kind": "score", "nps": 11}},
        {"event_id": ""},
        {"country": "PRT"},
    ],
    ids=["negative-amount", "lowercase-currency", "nps-out-of-range", "empty-id", "country-alpha3"],
)
def test_field_constraints_are_enforced(changes):
    touchpoint = (
        Touchpoint.PURCHASE
        if changes.get("payload", {}).get("kind") == "order"
        else (Touchpoint.SURVEY_RESPONSE if "payload" in changes else Touchpoint.PAGE_VIEW)
    )
    refused(raw_event(touchpoint, **changes))


# --------------------------------------------------------------------------- TypeChange


def _change() -> TypeChange:
    event = TouchpointEvent.model_validate(raw_event(Touchpoint.PURCHASE))
    return apply_event(None, event, MODEL).changes[0]


def test_type_change_serialises_from_as_from():
    """`from_` is `"from"` on the wire (a Python keyword cannot be a field name)."""
    change = _change()
    dumped = change.model_dump(by_alias=True)
    assert "from" in dumped and "from_" not in dumped
    assert dumped["from"] is None and dumped["to"] == "new"
    wire = json.loads(change.model_dump_json(by_alias=True))
    assert "from" in wire and "from_" not in wire


def test_type_change_round_trips_through_json():
    """A change written with aliases reads back equal, by alias or by field name."""
    change = TypeChange(
        change_id="chg_1",
        customer_id="c",
        dimension="lifecycle",
        **{"from": "new"},
        to="loyal",
        reason={"rule": "lifecycle.loyal", "evidence": {"purchases": 3}},
        caused_by="e9",
        at=datetime(2026, 1, 2, tzinfo=UTC),
    )
    assert change.from_ == "new"
    again = TypeChange.model_validate_json(change.model_dump_json(by_alias=True))
    assert again == change
    assert TypeChange(**{**change.model_dump(), "change_id": "chg_1"}) == change
    assert _change() == TypeChange.model_validate_json(_change().model_dump_json(by_alias=True))


# --------------------------------------------------------------------------- JSON Schemas validate real messages


def _examples() -> dict[str, dict]:
    """One real message of each kind, as it goes on the wire."""
    event = TouchpointEvent.model_validate(raw_event(Touchpoint.PURCHASE))
    out = apply_event(None, event, MODEL)
    letter = dead_letter(
        RawMessage("journey.touchpoints", 3, 42, b"cust-1", b"{oops"),
        "message: Invalid JSON",
        datetime(2026, 3, 1, tzinfo=UTC),
    )
    messages = {
        "touchpoint-event": event,
        "type-change": out.changes[0],
        "nurture-action": out.actions[0],
        "held-out-action": apply_event(None, event, HELD_OUT_MODEL).held_out[0],
        "dead-letter": letter,
        "erasure": audit(TouchpointEvent.model_validate(raw_event(Touchpoint.ERASURE_REQUEST))),
    }
    assert set(messages) == set(MESSAGE_MODELS)
    assert isinstance(messages["nurture-action"], NurtureAction) and isinstance(letter, DeadLetter)
    assert isinstance(messages["held-out-action"], HeldOutAction) and messages["held-out-action"].held_out is True
    return {name: json.loads(m.model_dump_json(by_alias=True)) for name, m in messages.items()}


def _validator(name: str):
    schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@pytest.mark.parametrize("name", sorted(MESSAGE_MODELS))
def test_json_schema_accepts_a_real_message(name):
    """A message the code really produces (or accepts) is valid under the committed schema."""
    errors = list(_validator(name).iter_errors(_examples()[name]))
    assert errors == [], [e.message for e in errors]


@pytest.mark.parametrize("name", sorted(MESSAGE_MODELS))
def test_json_schema_rejects_broken_messages(name):
    """The committed schema refuses a message with a required field missing, an extra field, or a bad version."""
    validator = _validator(name)
    good = _examples()[name]
    required = validator.schema["required"]
    assert required, "every message has required fields"
    for field in required:
        broken = copy.deepcopy(good)
        del broken[field]
        assert not validator.is_valid(broken), f"accepted without {field!r}"
    assert not validator.is_valid({**good, "unexpected": 1})
    assert not validator.is_valid({**good, "schema_version": 2})


def test_touchpoint_event_schema_rejects_unknown_kind_and_bad_payload():
    validator = _validator("touchpoint-event")
    good = _examples()["touchpoint-event"]
    assert not validator.is_valid({**good, "touchpoint": "telepathy"})
    assert not validator.is_valid({**good, "payload": {**good["payload"], "amount": -5}})
    assert not validator.is_valid({**good, "payload": {"kind": "gift"}})


def test_type_change_schema_uses_from_on_the_wire():
    schema = _validator("type-change").schema
    assert "from" in schema["properties"] and "from_" not in schema["properties"]
    assert "from" in schema["required"]


# --------------------------------------------------------------------------- erasure requests


def test_erasure_request_parses_and_carries_who_asked():
    event = TouchpointEvent.model_validate_json(json.dumps(raw_event(Touchpoint.ERASURE_REQUEST)))
    assert event.touchpoint is Touchpoint.ERASURE_REQUEST
    assert event.payload is not None and event.payload.requested_by == "privacy-desk"


@pytest.mark.parametrize(
    "payload",
    [
        None,  # who asked is required: the audit message needs it
        {"kind": "erasure"},
        {"kind": "erasure", "requested_by": ""},
        {"kind": "erasure", "requested_by": "x" * 129},
        {"kind": "erasure", "requested_by": "desk\nforged log line"},
        {"kind": "erasure", "requested_by": "desk\x1b[31m"},
        {"kind": "erasure", "requested_by": 42},
        {"kind": "erasure", "requested_by": ["desk"]},
        {"kind": "erasure", "requested_by": "desk", "email": "someone@example.org"},  # no extra personal data
        {"kind": "order", "amount": 1, "currency": "EUR"},
    ],
    ids=["none", "missing", "empty", "too-long", "newline", "escape", "number", "list", "extra-field", "wrong-kind"],
)
def test_hostile_erasure_request_is_refused(payload):
    data = raw_event(Touchpoint.ERASURE_REQUEST)
    if payload is None:
        del data["payload"]
    else:
        data["payload"] = payload
    refused(data)


def test_erasure_payload_only_on_an_erasure_request():
    error = refused(raw_event(Touchpoint.PAGE_VIEW, payload={"kind": "erasure", "requested_by": "desk"}))
    assert "does not take a payload" in error
