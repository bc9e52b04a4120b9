"""Property-based: nothing a sender can put on the input topic raises out of decoding and the core, and
no input leaves a customer state that cannot be read back from its Redis record.

Three kinds of input: arbitrary bytes (as key and value), a valid message with bytes changed, and
schema-shaped JSON, where every field of a nearly valid event may instead hold a hostile value:
huge, infinite or not-a-number numbers (also as the literals `Infinity`, `NaN`, `1e309` and a
400-digit integer, which Python's json module would not write), numbers as text, booleans, control
characters, unusual unicode, long text, deep nesting. Sequences of such events, with few event ids
so that re-sends and conflicts occur, go through one customer's state in turn; after every step the
record must decode to an equal state, and every output must serialise.

The profile (`tests/unit/core/conftest.py`) decides how many examples: few and fixed in CI, many and
random with `HYPOTHESIS_PROFILE=long`.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import MappingProxyType

from hypothesis import given
from hypothesis import strategies as st

from schemas import (
    STAGE_OF,
    ConsentPayload,
    ErasurePayload,
    OrderPayload,
    ScorePayload,
    SupportPayload,
    Touchpoint,
    TouchpointEvent,
)
from schemas.touchpoint import MAX_AMOUNT, PAYLOAD_ALLOWED, PAYLOAD_REQUIRED
from streams.core import CustomerState, advance, apply_event
from streams.core.churn.bgnbd import Params
from streams.core.churn.modelfile import ChurnModel
from streams.core.intake import RawMessage, dead_letter, decode
from streams.core.model import Model, load_model
from streams.core.money import Money
from streams.core.rules.compiled import CHURN_RULES
from streams.settings import Settings

MAX_BYTES = Settings.model_fields["max_message_bytes"].default
#: The shipped rules, with rates for two currencies and the largest order amount the settings allow,
#: so that the largest amounts reach the state's sums.
MODEL = load_model(money=Money("EUR", MappingProxyType({"USD": 0.92, "JPY": 0.0061}), float(MAX_AMOUNT)))


@dataclass(frozen=True)
class Raw:
    """JSON text put in a message as is (literals the json module does not write, deep nesting)."""

    text: str


def to_json(value: object) -> str:
    """JSON of `value`, with `Raw` parts verbatim; the json module's own Infinity / NaN for such floats."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    return json.dumps(value)


# --------------------------------------------------------------------------- hostile values

#: Numbers no float holds, as JSON literals (the json module writes none of these but the first three).
non_finite = st.sampled_from(["Infinity", "-Infinity", "NaN", "1e309", "-1e309", "9" * 400, "-" + "9" * 400]).map(Raw)
#: Finite, but beyond any real amount: two of the largest overflow a sum.
huge_finite = st.sampled_from([1e308, -1e308, 1.7976931348623157e308, 5e-324, -0.0, 10**15 + 1, 2**63, -(2**63)])
huge_numbers = st.one_of(
    non_finite,
    huge_finite,
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from(["1e-400", "-0", "0e0"]).map(Raw),
)
numbers_as_text = st.sampled_from(["12.50", "1", "3", "0", "-1", "1e3", "Infinity", "NaN", "", " 4 ", "0x10"])
weird_text = st.one_of(
    st.text(max_size=20),
    st.text(alphabet=st.characters(max_codepoint=0x1F), min_size=1, max_size=4),
    st.sampled_from(["[/]", "x[/][bold]", "\x1b[31mred\x1b[0m", "\u202eevil", "\ufeff", "é", "😀", "\x7f", "\u0085"]),
    st.sampled_from(["x" * 129, "y" * 5000, "z" * 70_000]),
    # a lone surrogate, escaped as JSON allows but UTF-8 cannot carry
    st.just(Raw('"\\ud800"')),
)
nested = st.one_of(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
        max_leaves=10,
    ),
    st.integers(min_value=1, max_value=3000).map(lambda n: Raw("[" * n + "]" * n)),
    st.integers(min_value=1, max_value=3000).map(lambda n: Raw('{"a":' * n + "1" + "}" * n)),
)
hostile = st.one_of(huge_numbers, numbers_as_text, weird_text, nested, st.booleans(), st.none())


#: What a number field gets instead of a number in range: mostly the numbers a float cannot hold.
hostile_numbers = st.one_of(non_finite, huge_finite, huge_numbers, numbers_as_text, st.booleans(), hostile)


# --------------------------------------------------------------------------- schema-shaped events

zones = st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12, minutes=-30))])
#: Times of one year (so that the rules' windows come into play), and sometimes any time a datetime holds.
times = st.integers(1, 5).flatmap(
    lambda n: (
        st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=zones)
        if n == 1
        else st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31), timezones=zones)
    )
)
amounts = st.one_of(
    st.floats(min_value=0, max_value=10**15),
    st.integers(min_value=0, max_value=10**15),
    st.sampled_from([0, 0.01, 12.5, 999_999.99, 10**6 + 1, 10**15]),
)
sentiments = st.floats(min_value=-1, max_value=1)
order = st.fixed_dictionaries(
    {"kind": st.just("order"), "amount": amounts, "currency": st.sampled_from(["EUR", "USD", "JPY", "GBP", "XXX"])},
    optional={"discount": amounts, "coupon": st.text(max_size=8), "order_id": st.text(max_size=8)},
)
score = st.fixed_dictionaries(
    {"kind": st.just("score")},
    optional={
        "csat": st.integers(1, 5),
        "nps": st.integers(0, 10),
        "ces": st.integers(1, 7),
        "rating": st.integers(1, 5),
    }
    | {"sentiment": sentiments},
)
support = st.fixed_dictionaries(
    {"kind": st.just("support")},
    optional={
        "topic": st.sampled_from(["how to", "billing", "HOW DO I"]),
        "sentiment": sentiments,
        "wait_seconds": st.floats(min_value=0, max_value=365 * 86400),
    },
)
consent = st.fixed_dictionaries(
    {"kind": st.just("consent"), "channel": st.sampled_from(["email", "sms", "push", "phone", "ads", "fax", ""])},
    optional={"purpose": st.sampled_from(["marketing", "service"]), "source": st.text(max_size=70)},
)
erasure = st.fixed_dictionaries(
    {"kind": st.just("erasure"), "requested_by": st.one_of(st.just("privacy-desk"), st.text(max_size=140))}
)
PAYLOADS = {
    OrderPayload: order,
    ScorePayload: score,
    SupportPayload: support,
    ConsentPayload: consent,
    ErasurePayload: erasure,
}
NUMBERS = {"amount", "discount", "csat", "nps", "ces", "rating", "sentiment", "wait_seconds", "schema_version"}


@st.composite
def event_dicts(draw: st.DrawFn, customer: str = "c1") -> dict:
    """A valid touchpoint event in which up to three fields (its payload's too) hold a hostile value."""
    kind = draw(st.one_of(st.sampled_from(list(Touchpoint)), st.sampled_from(list(PAYLOAD_ALLOWED))))
    data: dict = {
        "event_id": draw(st.sampled_from(["e1", "e2", "e3"])),  # few ids: re-sends and conflicts
        "customer_id": customer,
        "occurred_at": draw(times).isoformat(),
        "stage": STAGE_OF[kind].value,
        "touchpoint": kind.value,
        "channel": draw(st.sampled_from(["web", "app", "store", "email"])),
    }
    for name, valid in (("country", "PT"), ("language", "pt-PT"), ("segment", "b2b")):
        if draw(st.booleans()):
            data[name] = valid
    takes = PAYLOAD_ALLOWED.get(kind)
    if kind in PAYLOAD_REQUIRED or (takes is not None and draw(st.booleans())):
        data["payload"] = draw(PAYLOADS[takes])
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2, 3]))):
        where = data
        if isinstance(data.get("payload"), dict) and draw(st.integers(0, 2)):  # mostly where the numbers are
            where = data["payload"]
        numbers = sorted(NUMBERS & where.keys())
        if numbers and draw(st.booleans()):
            name = draw(st.sampled_from(numbers))
        else:
            name = draw(st.sampled_from([*sorted(where), "extra", "schema_version"]))
        where[name] = draw(hostile_numbers if name in NUMBERS else hostile)
    return data


def _check_round_trip(state: CustomerState) -> None:
    """The Redis record decodes to an equal state (a non-finite number would be written as null and
    refused on the way back; a NaN would differ from itself)."""
    record = state.to_json()
    again = CustomerState.from_json(record)
    assert again == state, "the state read back from its record differs"
    # The coded dicts (counts, stages) read back in their codes' order rather than as written: the record
    # may change its key order once, then stays byte for byte the same.
    assert CustomerState.from_json(again.to_json()) == state
    assert CustomerState.from_json(again.to_json()).to_json() == again.to_json()


class Customer:
    """One customer's state through a sequence of messages, checked after each."""

    def __init__(self, model: Model | None = None) -> None:
        self.model = MODEL if model is None else model
        self.state: CustomerState | None = None
        self.last_ts: float | None = None

    def feed(self, key: bytes | None, value: bytes, offset: int, in_place: bool) -> None:
        message = RawMessage("journey.touchpoints", 0, offset, key, value)
        result = decode(message, MAX_BYTES)
        if isinstance(result, str):
            assert result
            dead_letter(message, result).model_dump_json()
            return
        assert isinstance(result, TouchpointEvent)
        if self.state is not None and result.customer_id != self.state.customer_id:
            return  # another customer's event: the worker would apply it to their own state
        before = None if self.state is None else self.state.to_json()
        out = apply_event(self.state, result, self.model, in_place=in_place)
        if out.refused is not None or out.duplicate:
            assert out.refused is None or out.refused.strip()
            assert out.changes == [] and out.actions == []
            assert (None if self.state is None else self.state.to_json()) == before, "a refused event changed the state"
            if out.refused is not None:
                dead_letter(message, out.refused).model_dump_json()
            return
        for output in (*out.changes, *out.actions):
            output.model_dump_json(by_alias=True)
        self.state = out.state
        self.last_ts = result.occurred_ts
        _check_round_trip(self.state)

    def let_time_pass(self, days: float) -> None:
        if self.state is None or self.last_ts is None:
            return
        out = advance(self.state, self.last_ts + days * 86400, self.model)
        for output in (*out.changes, *out.actions):
            output.model_dump_json(by_alias=True)
        _check_round_trip(out.state)


@given(key=st.one_of(st.none(), st.binary(max_size=40), st.just(b"c1")), value=st.binary(max_size=3000))
def test_arbitrary_bytes_never_raise(key, value):
    customer = Customer()
    customer.feed(key, value, 0, in_place=False)


@given(
    base=event_dicts(),
    cuts=st.lists(st.tuples(st.integers(0, 2000), st.binary(max_size=4), st.integers(0, 3)), min_size=1, max_size=4),
)
def test_a_message_with_bytes_changed_never_raises(base, cuts):
    value = bytearray(to_json(base).encode("utf-8", "surrogatepass"))
    for at, new, dropped in cuts:
        at = at % (len(value) + 1)
        value[at : at + dropped] = new
    customer = Customer()
    customer.feed(b"c1", bytes(value), 0, in_place=True)


@given(
    events=st.lists(event_dicts(), min_size=2, max_size=10),
    in_place=st.booleans(),
    quiet_days=st.floats(min_value=0, max_value=3650),
)
def test_schema_shaped_hostile_events_never_raise_and_states_read_back(events, in_place, quiet_days):
    customer = Customer()
    for offset, data in enumerate(events):
        key = data["customer_id"].encode("utf-8", "surrogatepass") if isinstance(data["customer_id"], str) else b"c1"
        customer.feed(key, to_json(data).encode("utf-8", "surrogatepass"), offset, in_place)
    customer.let_time_pass(quiet_days)


def _churn_model() -> Model:
    """churn.yaml with a model, and traits on the other two churn scores: every churn signal and its due time."""
    text = CHURN_RULES.read_text() + (
        "  - {type: fading, when: {signal: p_alive, lte: 0.3}}\n"
        "  - {type: few_expected, when: {signal: expected_purchases, lt: 0.5}}\n"
    )
    path = Path(tempfile.mkdtemp()) / "churn-rules.yaml"
    path.write_text(text)
    churn = ChurnModel(Params(0.243, 30.9, 0.793, 2.426), "fit.yaml", "2026-01-01T00:00:00Z")
    return load_model(path, money=MODEL.money, churn=churn)


CHURN_MODEL = _churn_model()


@given(
    events=st.lists(event_dicts(), min_size=2, max_size=10),
    in_place=st.booleans(),
    quiet_days=st.floats(min_value=0, max_value=3650),
)
def test_hostile_events_with_a_churn_model_never_raise_and_states_read_back(events, in_place, quiet_days):
    customer = Customer(CHURN_MODEL)
    for offset, data in enumerate(events):
        key = data["customer_id"].encode("utf-8", "surrogatepass") if isinstance(data["customer_id"], str) else b"c1"
        customer.feed(key, to_json(data).encode("utf-8", "surrogatepass"), offset, in_place)
    customer.let_time_pass(quiet_days)


@given(amounts=st.lists(st.sampled_from([10**15, 1e308, 1.7976931348623157e308, 9.99e14]), min_size=2, max_size=6))
def test_largest_amounts_keep_the_total_finite(amounts):
    """Two purchases of 1e308 once made an infinite total, written as null: the record could not be read."""
    customer = Customer()
    for offset, amount in enumerate(amounts):
        data = {
            "event_id": f"buy-{offset}",
            "customer_id": "c1",
            "occurred_at": f"2026-03-{offset + 1:02d}T10:00:00Z",
            "stage": "purchase",
            "touchpoint": "purchase",
            "channel": "web",
            "payload": {"kind": "order", "amount": amount, "currency": "EUR"},
        }
        customer.feed(b"c1", json.dumps(data).encode(), offset, in_place=True)
    assert customer.state is None or math.isfinite(customer.state.total_spend)
