"""The per-customer state record: its copy and its Redis encoding."""

import dataclasses

import pytest

from streams.core.state import CustomerState


def full_state() -> CustomerState:
    """A state with every field away from its default, so a forgotten field shows."""
    values = {}
    for f in dataclasses.fields(CustomerState):
        if f.type.startswith("dict"):
            values[f.name] = {"x": 1.5} if "float" in f.type else {"x": 2}
        elif f.type.startswith("list"):
            values[f.name] = ["a1", "b2"]
        elif f.type.startswith("str"):
            values[f.name] = f"{f.name}-value"
        elif f.type.startswith("int"):
            values[f.name] = 7
        else:
            values[f.name] = 12.5
    return CustomerState(**values)


def test_clone_copies_every_field_and_shares_no_container():
    state = full_state()
    clone = state.clone()
    assert clone == state
    for f in dataclasses.fields(CustomerState):
        value = getattr(state, f.name)
        if isinstance(value, dict | list):
            assert getattr(clone, f.name) is not value, f"clone shares {f.name}"


def test_redis_encoding_round_trips_and_leaves_defaults_out():
    state = full_state()
    assert CustomerState.from_json(state.to_json()) == state
    bare = CustomerState("c1", 1.0, 2.0)
    assert bare.to_json() == b'{"customer_id":"c1","first_seen":1.0,"last_seen":2.0}'
    assert b"\n" not in state.to_json()  # the commit script splits records on newlines


def test_a_record_with_an_unknown_field_is_refused():
    with pytest.raises(ValueError):
        CustomerState.from_json(b'{"customer_id":"c","first_seen":1,"last_seen":2,"mystery":1}')
