"""A customer's time zone: the event's own zone, else their country's main zone, else the setting.

Every zone's rules come from the `tzdata` package (the IANA database as a pinned dependency), read
with `ZoneInfo.from_file`, never from the machine's `/usr/share/zoneinfo`: a worker and an offline
replay on hosts with other system copies still compute the same local times.

A country's default zone comes from the database's own table of each country's zones (`zone.tab`,
shipped in the same package): its first zone for that country. The database orders a country's
zones geographically, most populous first only where that does not contradict geography, so for the
few countries whose first zone is an outlying region with another UTC offset, `MAIN_ZONE` names the
zone most of its people live in (each must be one of that country's zones in `zone.tab`; a test checks it).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from zoneinfo import ZoneInfo

from schemas.timezones import zone_names

#: Countries whose first zone in `zone.tab` is not where most of their people live, and a zone of
#: another UTC offset: the zone of their most populous region instead.
MAIN_ZONE: dict[str, str] = {
    "AU": "Australia/Sydney",  # zone.tab starts with Lord Howe Island
    "BR": "America/Sao_Paulo",  # ... with Fernando de Noronha
    "CA": "America/Toronto",  # ... with Newfoundland
    "RU": "Europe/Moscow",  # ... with Kaliningrad
    "UA": "Europe/Kyiv",  # ... with Simferopol (listed under Russia's rows)
}


def _tab_rows() -> list[tuple[str, str]]:
    """(country code, zone) rows of `zone.tab`, in the file's order."""
    text = resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text(encoding="utf-8")
    rows = []
    for line in text.splitlines():
        if line and not line.startswith("#"):
            fields = line.split("\t")
            rows.append((fields[0], fields[2]))
    return rows


@cache
def country_zones() -> dict[str, tuple[str, ...]]:
    """Every zone of each ISO 3166 country code, in `zone.tab`'s order."""
    zones: dict[str, list[str]] = {}
    for country, zone in _tab_rows():
        zones.setdefault(country, []).append(zone)
    return {country: tuple(found) for country, found in zones.items()}


@cache
def country_defaults() -> dict[str, str]:
    """The default zone of each country code: `MAIN_ZONE`, else its first zone in `zone.tab`."""
    return {country: MAIN_ZONE.get(country, zones[0]) for country, zones in country_zones().items()}


@cache
def zone(name: str) -> ZoneInfo:
    """The zone of that IANA name, from the `tzdata` package (KeyError for a name it does not hold).

    Cached: at most the database's ~600 names, each read once.
    """
    if name not in zone_names():
        raise KeyError(name)
    path = resources.files("tzdata").joinpath("zoneinfo", *name.split("/"))
    with path.open("rb") as data:
        return ZoneInfo.from_file(data, key=name)


def customer_zone_name(timezone: str | None, country: str | None, default: str) -> str:
    """Which zone a customer's local times are in: their own (from an event), else their country's, else `default`.

    `timezone` was checked against the database when the event was parsed; `country` is any two
    characters a sender chose (upper-cased here; one the table does not know falls through to `default`).
    """
    if timezone is not None and timezone in zone_names():
        return timezone
    if country is not None:
        found = country_defaults().get(country.upper())
        if found is not None:
            return found
    return default
