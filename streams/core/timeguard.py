"""Which event times are accepted: none before a floor, none later than a given instant plus a tolerance.

An event clock (the worker's `JOURNEY_CLOCK=event`, the offline replay's) is the latest event time
applied and never moves back, so one event dated 2100 would fire every due time of its partition at
once, for good. The worker's wall clock is no safer: a far-future event moves a customer's own
times, and due times computed from them. So both shells refuse such events before they reach the
core, with this one function: the worker measures against its wall clock (in both clock modes), the
offline replay against an instant it is given (`--now`, else `--until`), never against the machine's
clock, so a replay gives the same outputs whenever it runs, and the events both accept give the same
outputs live and offline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from schemas.touchpoint import OCCURRED_BEFORE
from streams.core.instants import iso

#: Defaults of `JOURNEY_EARLIEST_EVENT_TIME` and `JOURNEY_MAX_EVENT_AHEAD_S`. The floor is well before
#: any customer journey this product has records of, and after the zero dates (1970-01-01,
#: 0001-01-01) that broken producers send; the tolerance covers senders' clocks that run a little ahead.
DEFAULT_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
DEFAULT_MAX_AHEAD_S = 300.0
#: No event at or after this is accepted at any instant: the message format's own limit
#: (schemas/touchpoint.py), which keeps every due time computed from an event within what a
#: datetime can hold (year 9999), whatever `now` a replay is given, or none.
LATEST_EVENT = OCCURRED_BEFORE

#: The start of every refusal's text (its kind, for counting: `streams/core/reasons.py`).
TOO_EARLY = "occurred_at is before the earliest accepted event time"
TOO_LATE = "occurred_at is too far ahead of the clock"


@dataclass(frozen=True, slots=True)
class TimeGuard:
    """The accepted range of event times: `earliest` (epoch seconds) to `now + max_ahead_s`."""

    earliest: float = DEFAULT_EARLIEST.timestamp()
    max_ahead_s: float = DEFAULT_MAX_AHEAD_S

    def bounds(self, now: float | None) -> tuple[float, float]:
        """The earliest and latest accepted event times at instant `now` (None: only the fixed bounds)."""
        latest = LATEST_EVENT.timestamp()
        if now is not None:
            latest = min(latest, now + self.max_ahead_s)
        return self.earliest, latest

    def refusal(self, ts: float, now: float | None) -> str | None:
        """Why an event at `ts` is refused at instant `now`, in words a producer can act on; None: accepted."""
        earliest, latest = self.bounds(now)
        if ts < earliest:
            return (
                f"{TOO_EARLY} ({iso(ts)} < {iso(earliest)}, JOURNEY_EARLIEST_EVENT_TIME): "
                "a zero or default date, or a clock set wrong"
            )
        if not ts <= latest:
            if now is None or latest < now + self.max_ahead_s:
                limit = f"after {iso(latest)}, the latest event time ever accepted"
            else:
                limit = f"more than {self.max_ahead_s:g} s after {iso(now)}, JOURNEY_MAX_EVENT_AHEAD_S"
            return (
                f"{TOO_LATE} ({iso(ts)} is {limit}): an event from the future would fire every "
                "inactivity check due before it at once"
            )
        return None
