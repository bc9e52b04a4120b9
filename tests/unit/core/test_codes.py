"""The code tables: stable codes, and every string round-trips (names outside the tables too)."""

from hypothesis import given
from hypothesis import strategies as st

from streams.core import codes
from streams.core.rules.signals import CATALOGUE
from streams.core.rules.spec import LIFECYCLE_TYPES


def test_codes_are_pinned():
    """A code means one name forever: reordering or removing a name would change what stored codes mean."""
    assert codes.LIFECYCLE.encode("prospect") == "A" and codes.LIFECYCLE.encode("lapsed") == "G"
    assert codes.TRAITS.encode("angry") == "H"
    assert codes.ACTIONS.encode("win_back_offer") == "F" and codes.ACTIONS.encode("change_cost_notice") == "V"
    assert codes.EVIDENCE.encode("since") == "A" and codes.EVIDENCE.encode("count_product_usage") == "A9"
    assert codes.CHANNELS.encode("web") == "A"


def test_every_lifecycle_type_and_signal_has_a_code():
    assert all(codes.LIFECYCLE.encode(t) != t for t in LIFECYCLE_TYPES)
    assert all(codes.EVIDENCE.encode(name) != name for name in CATALOGUE)


@given(st.text(max_size=12))
def test_any_string_round_trips(name):
    for table in (codes.LIFECYCLE, codes.TRAITS, codes.ACTIONS, codes.CHANNELS, codes.EVIDENCE):
        assert table.decode(table.encode(name)) == name


def test_a_name_that_reads_as_a_code_is_escaped():
    assert codes.ACTIONS.encode("A") == "!A" and codes.ACTIONS.decode("!A") == "A"
    assert codes.ACTIONS.encode("!x") == "!!x" and codes.ACTIONS.decode("!!x") == "!x"
    assert codes.ACTIONS.decode("vip_call") == "vip_call"  # names as records before the codes hold them
