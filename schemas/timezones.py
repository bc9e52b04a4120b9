"""IANA time zone names, from the `tzdata` package (the IANA database as a Python dependency), not our own list.

An event may name its customer's zone (`TouchpointEvent.timezone`); only a name the database holds
is taken, so a sender's text never reaches a file path, and every process with the same `tzdata`
accepts the same names. Read once, on first use.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

#: Longest name taken (the longest in the database is 32 characters); longer text is refused unread.
MAX_ZONE_NAME = 64
#: Names are letters, digits and `_ + - /` (Etc/GMT+5, America/Port-au-Prince, America/Argentina/Salta).
ZONE_PATTERN = r"^[A-Za-z0-9_+\-/]+$"


@cache
def zone_names() -> frozenset[str]:
    """Every zone name of the installed `tzdata` release, links included (Europe/Kiev, US/Eastern, UTC)."""
    return frozenset(resources.files("tzdata").joinpath("zones").read_text(encoding="ascii").split())


def check_timezone(name: str) -> str:
    """`name` itself, or a ValueError naming it when the IANA database has no such zone (pydantic validators)."""
    if name not in zone_names():
        raise ValueError(
            f"{name[:MAX_ZONE_NAME]!r} is not an IANA time zone name (such as Europe/Lisbon, America/New_York, UTC)"
        )
    return name
