"""Epoch seconds as datetimes and ISO-8601 text, for every instant the core stamps or names."""

from __future__ import annotations

from datetime import UTC, datetime

#: The instants `datetime` can hold (0001-01-01 to 9999-12-31T23:59:59Z, as epoch seconds). A due time
#: past the last is never scheduled (`_schedule`), and formatting clamps to them rather than raise:
#: one unformattable time used to fail every sweep of its partition, for good.
EARLIEST_INSTANT = datetime(1, 1, 1, tzinfo=UTC).timestamp()
LATEST_INSTANT = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()


def instant(ts: float) -> datetime:
    """Epoch seconds as an aware UTC datetime, clamped to the range `datetime` can hold (never raises)."""
    if not EARLIEST_INSTANT <= ts <= LATEST_INSTANT:  # also catches NaN
        ts = LATEST_INSTANT if ts > EARLIEST_INSTANT else EARLIEST_INSTANT
    return datetime.fromtimestamp(ts, UTC)


def iso(ts: float) -> str:
    """Epoch seconds as an ISO-8601 UTC instant, as used in causes (clamped as `instant` is)."""
    return instant(ts).isoformat().replace("+00:00", "Z")
