"""The per-customer state record: its copy and its Redis encoding."""

import dataclasses

import pytest

from streams.core.state import CustomerState


def full_state() -> CustomerState:
    """A state with every field away from its default, so a forgotten field shows."""
    values = {}
    for f in dataclasses.fields(CustomerState):
        kind = f.type.removeprefix("Annotated[")
        if kind.startswith("_Counts"):  # keyed by touchpoint kinds, stored as their codes
            values[f.name] = {"page_view": 2}
        elif kind.startswith("_ByStage"):  # keyed by stages, likewise
            values[f.name] = {"purchase": 1.5}
        elif kind.startswith("dict[str, tuple"):  # consent: channel -> (granted, time, source)
            values[f.name] = {"sms": (True, 1.5, "signup_form"), "email": (False, 2.5, None)}
        elif kind.startswith("_Lifecycle"):  # names stored as codes (streams/core/codes.py)
            values[f.name] = "loyal"
        elif kind.startswith(("_Traits", "_Actions")):
            values[f.name] = {"angry": 1.5, "win_back_offer": 2.5, "custom_name": 3.5}
        elif kind.startswith("_Channels"):
            values[f.name] = ["web", "fax"]
        elif kind.startswith("_Suppressions"):
            values[f.name] = [[1.5, "win_back_offer", "cooldown: sent 2.0 days ago, cooldown 30 days"], [2.5, "x", "y"]]
        elif kind.startswith("dict"):
            values[f.name] = {"x": 1.5} if "float" in kind.split("]")[0] else {"x": 2}
        elif kind.startswith("list[list"):
            values[f.name] = [[1.5, 2.5, 3.5]]
        elif kind.startswith("list[tuple"):  # deferred actions: (release, decided, action, change id, rule)
            values[f.name] = [(1.5, 0.5, "welcome_onboarding", "chg_1", "lifecycle.new")]
        elif kind.startswith("list[float"):
            values[f.name] = [1.5, 2.5]
        elif kind.startswith("list"):
            values[f.name] = ["a1", "b2"]
        elif kind.startswith("str"):
            values[f.name] = f"{f.name}-value"
        elif kind.startswith("int"):
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
    assert bare.to_json() == b'{"id":"c1","fs":1.0,"ls":2.0}'  # short keys, defaults left out
    assert b"\n" not in state.to_json()  # the commit script splits records on newlines


def test_a_record_with_an_unknown_field_is_refused():
    with pytest.raises(ValueError):
        CustomerState.from_json(b'{"id":"c","fs":1,"ls":2,"mystery":1}')


def test_recent_event_fingerprints_match_only_whole_entries():
    """Fingerprints are packed into one string; a match straddling two of them is no match."""
    state = CustomerState("c", 1.0, 1.0)
    state.remember("AAAABBBB", 32)
    state.remember("CCCCDDDD", 32)
    assert state.seen("AAAABBBB") and state.seen("CCCCDDDD")
    assert not state.seen("BBBBCCCC")
    for n in range(40):
        state.remember(f"{n:08d}", 32)
    assert len(state.recent_events) == 32 * 8 and not state.seen("AAAABBBB") and state.seen(f"{39:08d}")


def test_contents_are_recalled_beside_their_ids_aligned_from_the_newest():
    """Contents sit beside the *latest* ids: a record of the previous version (ids only) gains them as it goes."""
    state = CustomerState("c", 1.0, 1.0, recent_events="AAAAAAAABBBBBBBB")  # two ids without contents
    state.remember("CCCCCCCC", 3, "cccccc")
    assert state.recall("CCCCCCCC", 6) == "cccccc"
    assert state.recall("BBBBBBBB", 6) == "" and state.recall("AAAAAAAA", 6) == ""  # remembered, content unknown
    assert state.recall("ZZZZZZZZ", 6) is None and state.recall("AAAABBBB", 6) is None
    state.remember("DDDDDDDD", 3, "dddddd")
    state.remember("EEEEEEEE", 3, "eeeeee")
    assert state.recall("AAAAAAAA", 6) is None and state.recall("BBBBBBBB", 6) is None  # out of the window
    assert [state.recall(f * 8, 6) for f in "CDE"] == ["cccccc", "dddddd", "eeeeee"]
    assert len(state.recent_events) == 3 * 8 and len(state.recent_contents) == 3 * 6
    assert CustomerState.from_json(state.to_json()) == state


def test_every_touchpoint_kind_and_stage_has_its_own_code():
    """Codes are fixed in the table, one per enum value, never shared: a new kind without one is refused."""
    from schemas.touchpoint import Stage, Touchpoint
    from streams.core.state import STAGE_CODES, TOUCHPOINT_CODES

    assert set(TOUCHPOINT_CODES) == {t.value for t in Touchpoint}
    assert set(STAGE_CODES) == {s.value for s in Stage}
    for codes in (TOUCHPOINT_CODES, STAGE_CODES):
        assert len(set(codes.values())) == len(codes)
        assert all(len(code) < len(name) for name, code in codes.items())


def test_counts_and_stages_are_stored_as_codes():
    state = CustomerState("c1", 1.0, 2.0, last_by_stage={"purchase": 2.0}, counts={"page_view": 3, "purchase": 1})
    assert state.to_json() == b'{"id":"c1","fs":1.0,"ls":2.0,"st":{"p":2.0},"n":{"e":3,"u":1}}'
    assert CustomerState.from_json(state.to_json()) == state


#: A record as the previous version wrote it: touchpoint kinds and stages by their names.
OLD_RECORD = (
    b'{"id":"cust-000169","fs":1767434111.986,"ls":1768304844.812,"st":{"pre_purchase":1767495260.911,'
    b'"purchase":1768206084.775,"post_purchase":1768304844.812},"n":{"social_engagement":1,"page_view":1,'
    b'"referral_visit":1,"product_view":1,"purchase":1,"email_open":2},"ch":["store","web","app"],"p":1,'
    b'"sp":203.19,"fp":1768206084.775,"lp":1768206084.775,"co":1,"fv":1768205636.952,"be":4,"cy":"RU",'
    b'"lg":"ru-RU","sg":"e-commerce","lt":"lapsed","lts":1783758084.775,"tr":{"international":1767434111.986,'
    b'"impulsive":1768206084.775,"efficient":1768206084.775},"ck":1783758084.775,"du":1799742084.775,'
    b'"as":{"last_win_back":1783758084.775},"ml":[1783758084.775],"fw":1783758084.775,'
    b'"re":"eImKhHdRoXpC1z_SpMeNI9WcdZwAEQney-8PmQOLBzpp5SsPx6EnrhAB","rc":"avfyO9XOTaqXH8ooXus-hQtzZekvEsOyH0-TwowoZu"}'
)


def test_a_record_of_the_previous_version_still_decodes():
    state = CustomerState.from_json(OLD_RECORD)
    assert state.last_by_stage == {
        "pre_purchase": 1767495260.911,
        "purchase": 1768206084.775,
        "post_purchase": 1768304844.812,
    }
    assert state.counts == {
        "social_engagement": 1,
        "page_view": 1,
        "referral_visit": 1,
        "product_view": 1,
        "purchase": 1,
        "email_open": 2,
    }
    assert CustomerState.from_json(state.to_json()) == state
    assert len(state.to_json()) < len(OLD_RECORD)


def test_an_unknown_touchpoint_kind_in_a_record_is_refused():
    with pytest.raises(ValueError):
        CustomerState.from_json(b'{"id":"c","fs":1,"ls":2,"n":{"teleport":1}}')


def test_names_are_stored_as_codes_and_read_back_as_names():
    """Types, actions, channels and suppression reasons take a few characters each in Redis (codes.py)."""
    state = CustomerState(
        "c1",
        1.0,
        2.0,
        channels=["web", "fax"],
        lifecycle="at_risk",
        traits={"angry": 1.0},
        actions_sent={"win_back_offer": 2.0, "my_action": 2.0},
        suppressed_log=[[2.0, "lifecycle_coupon", "no promotion while the customer is angry"]],
    )
    raw = state.to_json()
    for name in (b"at_risk", b'"angry":', b"win_back_offer", b"lifecycle_coupon", b"web", b"promotion"):
        assert name not in raw
    assert b"my_action" in raw and b"fax" in raw  # names outside the tables are kept as they are
    assert CustomerState.from_json(raw) == state
    assert CustomerState.from_json(raw).as_dict()["actions_sent"] == {"win_back_offer": 2.0, "my_action": 2.0}


#: A record as the version before these codes wrote it: names, and fingerprints of 8 and 6 characters.
NAMED_RECORD = (
    b'{"id":"cust-000257","fs":1775443332.861,"ls":1789851613.507,"st":{"b":1775737036.895},"n":{"e":1,"u":9},'
    b'"ch":["store","app","web","email"],"p":9,"sp":1920.66,"lt":"loyal","lts":1789774278.93,'
    b'"tr":{"international":1775443332.861,"angry":1778863051.52},"ck":1789851613.507,'
    b'"as":{"multilingual_routing":1775443332.861,"loyalty_programme_invite":1788452046.459},"su":2,'
    b'"sq":[[1782213538.842,"lifecycle_coupon","no promotion while the customer is angry"],'
    b'[1789661646.459,"referral_programme","cooldown: sent 50.6 days ago, cooldown 90 days"]],'
    b'"re":"xXexdfJQnzI40HxjyR9K8ilG","rc":"i05yl9sxHR-mNrOiFr"}'
)


def test_a_record_with_names_of_the_previous_version_still_decodes():
    state = CustomerState.from_json(NAMED_RECORD)
    assert state.lifecycle == "loyal" and state.channels == ["store", "app", "web", "email"]
    assert set(state.traits) == {"international", "angry"}
    assert set(state.actions_sent) == {"multilingual_routing", "loyalty_programme_invite"}
    assert state.suppressed_log[1] == [
        1789661646.459,
        "referral_programme",
        "cooldown: sent 50.6 days ago, cooldown 90 days",
    ]
    assert state.recent_events == "xXexdfJ" + "nzI40Hx" + "yR9K8il"  # the start of each earlier fingerprint
    assert state.recent_contents == "i05y" + "sxHR" + "NrOi"
    assert CustomerState.from_json(state.to_json()) == state
    assert len(state.to_json()) < len(NAMED_RECORD) - 150
