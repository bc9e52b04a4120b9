"""A history read once and replayed through the pure core up to one or more instants ("cuts").

Each cut has its own offline replay, fed only the events at or before it, whose clock is then
advanced to the cut (so time-based changes up to it have happened, as `journey replay --until`
does, and then every customer is brought to it, whatever order the file is in). Purchases after a cut are not applied; they are only noted, per customer, for the labels
of `journey evaluate`. One read serves every cut: parsing the file is most of the cost.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from schemas.touchpoint import OrderPayload
from streams.core import CustomerState, advance
from streams.core.model import Model
from streams.core.timeguard import TimeGuard
from streams.imports.records import SourceRecord
from streams.replay.engine import OfflineReplay

DAY = 86_400.0
#: Records between two `progress` calls and two collector freezes (see `streams/replay/run.py`).
_EVERY = 4096


@dataclass
class Cut:
    """The replay up to `at` (epoch seconds) and who bought in (at, at + horizon]."""

    at: float
    horizon_s: float | None
    replay: OfflineReplay
    bought_after: set[str] = field(default_factory=set)

    @property
    def states(self) -> dict[str, CustomerState]:
        return self.replay.states  # type: ignore[return-value]  # always the in-memory dict here


@dataclass
class History:
    cuts: list[Cut]
    records: int = 0
    rejected: int = 0  # lines that are not events
    too_early: int = 0  # events dated before the guard's floor (JOURNEY_EARLIEST_EVENT_TIME)
    earliest: float = 0.0  # that floor
    first_event: float | None = None
    last_event: float | None = None


def is_purchase(record_event) -> bool:
    """A paid purchase, as the core counts one (`streams/core/engine.py`)."""
    return record_event.touchpoint.value == "purchase" and isinstance(record_event.payload, OrderPayload)


def replay_to(
    records: Iterable[SourceRecord],
    model: Model,
    cuts: list[tuple[float, float | None]],
    guard: TimeGuard | None = None,
    progress: Callable[[int], None] | None = None,
) -> History:
    """Replay `records` (in file order) once per cut `(at, horizon_s)`. Events dated before `guard`'s floor
    are refused, as `journey replay` refuses them; events after a cut never reach its replay."""
    history = History([Cut(at, horizon, OfflineReplay(model)) for at, horizon in cuts])
    earliest = history.earliest = (guard or TimeGuard()).earliest  # later events are not applied: no bound above
    try:
        for record in records:
            history.records += 1
            if not history.records % _EVERY:
                gc.freeze()  # the states only grow: keep the collector off them (unfrozen at the end)
                if progress is not None:
                    progress(history.records)
            event = record.event
            if event is None:
                history.rejected += 1
                continue
            ts = event.occurred_ts
            if not earliest <= ts:
                history.too_early += 1
                continue
            if history.first_event is None or ts < history.first_event:
                history.first_event = ts
            if history.last_event is None or ts > history.last_event:
                history.last_event = ts
            for cut in history.cuts:
                if ts <= cut.at:
                    cut.replay.apply(event)
                elif cut.horizon_s is not None and ts <= cut.at + cut.horizon_s and is_purchase(event):
                    cut.bought_after.add(event.customer_id)
        for cut in history.cuts:
            cut.replay.advance_to(cut.at)
            # And every customer, not only those the clock's heap holds due: in a file not in time order a
            # customer's events may come after the clock passed their due time, which it then never fires.
            for state in cut.replay.states.values():
                advance(state, cut.at, model, in_place=True)
    finally:
        gc.unfreeze()
    if progress is not None:
        progress(history.records)
    return history


def bgnbd_inputs(state: CustomerState, at: float) -> tuple[int, float, float] | None:
    """(x, t_x, T) in days for BG/NBD, read from the state as the churn signals read it:
    x = paid purchases − 1, t_x = last − first purchase, T = at − first purchase. None before a purchase."""
    first, last = state.first_purchase_at, state.last_purchase_at
    if state.purchases < 1 or first is None or last is None:
        return None
    return state.purchases - 1, max(0.0, (last - first) / DAY), max(0.0, (at - first) / DAY)
