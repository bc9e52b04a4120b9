"""The quiet-hours window and its end, in local time: wrap-around, clock changes, zones far from UTC,
and the customer's zone (their own, their country's, the setting). Expected instants are worked out
by hand from each zone's published offsets, not taken from the code."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.timezones import zone_names
from streams.core.playbook.quiet import QuietWindow
from streams.core.zones import MAIN_ZONE, country_defaults, country_zones, customer_zone_name, zone

NIGHT = QuietWindow.of("21:00", "08:00")


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def shown(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S")


# --------------------------------------------------------------------------- the window


@pytest.mark.parametrize(
    ("at", "release"),
    [
        ("2026-03-02T22:00:00", "2026-03-03T08:00:00"),  # evening: the end is the next morning
        ("2026-03-02T03:00:00", "2026-03-02T08:00:00"),  # after midnight: the same morning
        ("2026-03-02T21:00:00", "2026-03-03T08:00:00"),  # the start belongs to the window
        ("2026-03-02T07:59:59.999", "2026-03-02T08:00:00"),
        ("2026-03-02T08:00:00", None),  # the end does not
        ("2026-03-02T12:00:00", None),
        ("2026-03-02T20:59:59.999", None),
    ],
)
def test_a_window_that_wraps_midnight_ends_at_its_next_end(at, release):
    assert shown(NIGHT.release_at(utc(at), zone("UTC"))) == release


def test_a_window_within_one_day():
    lunch = QuietWindow.of("12:00", "14:00")
    assert shown(lunch.release_at(utc("2026-03-02T13:10:00"), zone("UTC"))) == "2026-03-02T14:00:00"
    assert lunch.release_at(utc("2026-03-02T11:59:00"), zone("UTC")) is None
    assert lunch.release_at(utc("2026-03-02T14:00:00"), zone("UTC")) is None
    assert not lunch.wraps and NIGHT.wraps


def test_an_empty_window_is_refused():
    with pytest.raises(ValueError):
        QuietWindow.of("08:00", "08:00")


# --------------------------------------------------------------------------- clock changes (America/New_York)

NEW_YORK = zone("America/New_York")


def test_spring_forward_shortens_the_night_by_an_hour():
    """2026-03-08 02:00 EST (07:00Z) becomes 03:00 EDT: 22:00 EST is 03:00Z, 08:00 EDT is 12:00Z."""
    assert shown(NIGHT.release_at(utc("2026-03-08T03:00:00"), NEW_YORK)) == "2026-03-08T12:00:00"


def test_an_end_that_the_spring_forward_gap_swallows_is_the_jump_itself():
    """22:00–02:30: 02:30 never happens that night; the clock leaves the window at the jump, 03:00 EDT (07:00Z)."""
    window = QuietWindow.of("22:00", "02:30")
    assert shown(window.release_at(utc("2026-03-08T06:30:00"), NEW_YORK)) == "2026-03-08T07:00:00"


def test_fall_back_lengthens_the_night_by_an_hour():
    """2026-11-01 02:00 EDT (06:00Z) becomes 01:00 EST: 21:00 EDT is 01:00Z, 08:00 EST is 13:00Z."""
    assert shown(NIGHT.release_at(utc("2026-11-01T01:00:00"), NEW_YORK)) == "2026-11-01T13:00:00"


def test_an_end_in_the_repeated_hour_is_the_next_one_of_the_two():
    """21:00–01:30: 01:30 happens twice on 2026-11-01, at 05:30Z (EDT) and 06:30Z (EST)."""
    window = QuietWindow.of("21:00", "01:30")
    assert shown(window.release_at(utc("2026-11-01T05:15:00"), NEW_YORK)) == "2026-11-01T05:30:00"  # 01:15 EDT
    assert window.release_at(utc("2026-11-01T05:45:00"), NEW_YORK) is None  # 01:45 EDT: out
    assert shown(window.release_at(utc("2026-11-01T06:15:00"), NEW_YORK)) == "2026-11-01T06:30:00"  # 01:15 EST


def test_a_fall_back_that_lands_before_the_start_leaves_the_window_at_once():
    """01:30–05:00: at 06:00Z the clock goes from 02:00 EDT back to 01:00 EST, out of the window."""
    window = QuietWindow.of("01:30", "05:00")
    assert shown(window.release_at(utc("2026-11-01T05:45:00"), NEW_YORK)) == "2026-11-01T06:00:00"
    # back in at 01:30 EST (06:30Z), until 05:00 EST (10:00Z)
    assert shown(window.release_at(utc("2026-11-01T06:40:00"), NEW_YORK)) == "2026-11-01T10:00:00"


def test_half_hour_daylight_saving_of_lord_howe_island():
    """Australia/Lord_Howe moves by 30 minutes: +11:00 in summer, +10:30 from 2026-04-05 02:00 (15:00Z)."""
    lord_howe = zone("Australia/Lord_Howe")
    # 2026-04-04 22:00 +11:00 is 11:00Z; the morning's 08:00 is at +10:30: 21:30Z
    assert shown(NIGHT.release_at(utc("2026-04-04T11:00:00"), lord_howe)) == "2026-04-04T21:30:00"


# --------------------------------------------------------------------------- zones far from UTC


@pytest.mark.parametrize(
    ("name", "at", "release"),
    [
        ("Pacific/Kiritimati", "2026-06-01T08:00:00", "2026-06-01T18:00:00"),  # +14:00: 22:00 local
        ("Pacific/Pago_Pago", "2026-06-01T08:00:00", "2026-06-01T19:00:00"),  # -11:00: 21:00 local
        ("Asia/Kathmandu", "2026-01-01T16:00:00", "2026-01-02T02:15:00"),  # +05:45: 21:45 local
        ("Pacific/Chatham", "2026-01-01T09:00:00", "2026-01-01T18:15:00"),  # +13:45 (summer): 22:45 local
    ],
)
def test_zones_far_from_utc(name, at, release):
    assert shown(NIGHT.release_at(utc(at), zone(name))) == release


# --------------------------------------------------------------------------- properties

#: Zones with daylight saving time, odd offsets, a skipped day (Apia, 2011-12-30) and offsets far from UTC.
TRICKY = [
    "America/New_York",
    "Europe/Lisbon",
    "Europe/London",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Pacific/Apia",
    "Pacific/Kiritimati",
    "America/Sao_Paulo",
    "America/Santiago",
    "Asia/Tehran",
    "Africa/Casablanca",
    "Antarctica/Troll",
    "America/St_Johns",
]


@given(
    name=st.sampled_from(TRICKY) | st.sampled_from(sorted(zone_names())),
    ts=st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False),  # 1970 to 2100
    start=st.integers(0, 24 * 60 - 1),
    end=st.integers(0, 24 * 60 - 1),
)
def test_the_release_is_the_first_instant_outside_the_window(name, ts, start, end):
    if start == end:
        return
    ts = round(ts, 3)
    window, where = QuietWindow(start * 60, end * 60), zone(name)
    release = window.release_at(ts, where)
    if not window.inside(ts, where):
        assert release is None
        return
    assert release is not None and release > ts
    assert not window.inside(release, where), "the release falls in the window"
    # every instant before it is inside: every ten minutes, and the last millisecond
    probe = ts
    while probe < release:
        assert window.inside(probe, where), f"{shown(probe)} is outside, before the release {shown(release)}"
        probe += 600
    assert window.inside(max(ts, release - 0.001), where)


# --------------------------------------------------------------------------- the customer's zone


def test_the_zone_is_the_customers_own_then_their_countrys_then_the_setting():
    assert customer_zone_name("Asia/Tokyo", "PT", "UTC") == "Asia/Tokyo"
    assert customer_zone_name(None, "PT", "UTC") == "Europe/Lisbon"
    assert customer_zone_name(None, "br", "UTC") == "America/Sao_Paulo"  # case of a sender's choosing
    assert customer_zone_name(None, "ZZ", "Europe/Berlin") == "Europe/Berlin"  # no such country
    assert customer_zone_name(None, None, "Europe/Berlin") == "Europe/Berlin"
    assert customer_zone_name("Not/AZone", None, "UTC") == "UTC"  # never trusted unchecked


def test_country_defaults_come_from_the_databases_table():
    zones = country_zones()
    assert country_defaults()["US"] == "America/New_York" == zones["US"][0]
    assert country_defaults()["JP"] == "Asia/Tokyo"
    for country, main in MAIN_ZONE.items():
        assert main in zones[country], f"{main} is not one of {country}'s zones"
        assert main != zones[country][0], f"{country}: the override repeats the table's first zone"
    assert all(name in zone_names() for name in country_defaults().values())


def test_zone_rules_come_from_the_tzdata_package():
    assert zone("Europe/Lisbon").key == "Europe/Lisbon"
    with pytest.raises(KeyError):
        zone("../../etc/passwd")
