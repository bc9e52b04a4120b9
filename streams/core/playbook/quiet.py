"""Quiet hours: a daily window of local time in which no marketing or promotion is sent, and when it ends.

The window is [start, end) of the customer's local wall-clock time; it wraps midnight when start is
after end (21:00–08:00). An instant is inside it when its local time of day, in the customer's zone, is.
`release_at` gives the first instant at or after a given one that is outside: where the window
ends that night, or earlier, where a clock change jumps the local time out of it (a spring-forward
gap that swallows the end, a fall-back that lands before the start). The zone's rules come from
zoneinfo, so daylight saving time is its concern; nothing here reads a clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

DAY_S = 86_400
#: Offsets are probed this far apart when looking for a clock change: no zone has changed its offset
#: twice within 30 minutes, so a change between two probes is one change, found by bisection.
PROBE_S = 1_800
#: Clock changes crossed in one search before giving up (a real night crosses at most one).
MAX_SEGMENTS = 16


def _seconds(of: time) -> float:
    return of.hour * 3600 + of.minute * 60 + of.second + of.microsecond / 1e6


@dataclass(frozen=True, slots=True)
class QuietWindow:
    """[start, end) of local time of day, in seconds after midnight; start != end."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not (0 <= self.start < DAY_S and 0 <= self.end < DAY_S) or self.start == self.end:
            raise ValueError(f"a quiet window needs two different times of day, not {self.start} and {self.end}")

    @classmethod
    def of(cls, start: str, end: str) -> QuietWindow:
        """From "HH:MM" texts (already checked by the playbook's schema)."""
        return cls(_hhmm(start), _hhmm(end))

    @property
    def wraps(self) -> bool:
        return self.start > self.end

    def holds(self, seconds_of_day: float) -> bool:
        """Whether that local time of day is inside the window."""
        if self.wraps:
            return seconds_of_day >= self.start or seconds_of_day < self.end
        return self.start <= seconds_of_day < self.end

    def inside(self, ts: float, zone: ZoneInfo) -> bool:
        """Whether the instant `ts` (epoch seconds) falls in the window, in `zone`'s local time."""
        return self.holds(_seconds(datetime.fromtimestamp(ts, zone).time()))

    def describe(self) -> str:
        return f"{_text(self.start)}–{_text(self.end)}"

    def release_at(self, ts: float, zone: ZoneInfo) -> float | None:
        """The first instant at or after `ts` outside the window (None: `ts` itself is outside).

        On a stretch of constant UTC offset, local time runs forward, so from inside the window it
        first leaves at the window's end. A clock change inside the stretch moves the local time at
        once: if that lands outside, the change is the first instant outside; otherwise the search
        goes on from there with the new offset.
        """
        if not self.inside(ts, zone):
            return None
        at = ts
        for _ in range(MAX_SEGMENTS):
            offset = _offset(at, zone)
            local = _seconds(datetime.fromtimestamp(at, zone).time())
            # The window's end next comes round this much later (0 < delta <= a day: `at` is inside).
            delta = (self.end - local) % DAY_S or DAY_S
            end = float(round(at + delta))  # a whole second: the end is a whole minute, offsets whole seconds
            change = _first_change(at, end, offset, zone)
            if change is None:
                return end
            if not self.inside(change, zone):
                return change
            at = change
        raise RuntimeError(f"no end of the quiet window {self.describe()} found after {MAX_SEGMENTS} clock changes")


def _hhmm(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 3600 + int(minutes) * 60


def _text(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


def _offset(ts: float, zone: ZoneInfo) -> float:
    delta = datetime.fromtimestamp(ts, zone).utcoffset()
    assert delta is not None
    return delta.total_seconds()


def _first_change(start: float, end: float, offset: float, zone: ZoneInfo) -> float | None:
    """The first whole second in (start, end] at which `zone`'s UTC offset is no longer `offset`, or None.

    Probes every `PROBE_S`, then bisects between the last probe with the old offset and the first
    with another (zones change their offsets at whole seconds).
    """
    before = start
    probe = min(start + PROBE_S, end)
    while True:
        if _offset(probe, zone) != offset:
            low, high = math.floor(before), math.ceil(probe)  # offset(low) is the old one, offset(high) not
            while high - low > 1:
                middle = (low + high) // 2
                if _offset(middle, zone) == offset:
                    low = middle
                else:
                    high = middle
            return float(high)
        if probe >= end:
            return None
        before, probe = probe, min(probe + PROBE_S, end)
