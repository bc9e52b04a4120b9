"""Offline replay: the same pure core the worker runs, with the file's event time as the clock.

The clock is the largest event time seen so far. Before an event moves it forward, every
inactivity check that falls due up to the new clock fires, in (due time, customer id)
order, exactly as the worker's sweep would fire it (`advance`, stamped with the due
time). So the same file gives byte-identical outputs on every run, and the same changes
and actions as the live worker with `JOURNEY_CLOCK=event`.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import MutableMapping
from dataclasses import dataclass, field

from schemas import Erasure, NurtureAction, TouchpointEvent, TypeChange
from streams.core import CustomerState, Outcome, advance, apply_event, next_due
from streams.core.model import Model


@dataclass
class Emitted:
    """What one step of the replay produced, in order."""

    changes: list[TypeChange] = field(default_factory=list)
    actions: list[NurtureAction] = field(default_factory=list)
    held_out: list[NurtureAction] = field(default_factory=list)  # HeldOutAction: the holdouts topic's
    #: Why the core refused the step's event (`Outcome.refused`): it is dead-lettered, as the worker does.
    refused: str | None = None
    #: The audit record when the step's event was an erasure request that forgot the customer.
    erased: Erasure | None = None

    def add(self, outcome: Outcome) -> None:
        self.changes.extend(outcome.changes)
        self.actions.extend(outcome.actions)
        self.held_out.extend(outcome.held_out)


@dataclass
class ReplayCounts:
    events: int = 0
    duplicates: int = 0
    conflicts: int = 0  # events refused because their id was applied before with other content
    changes: int = 0
    actions: int = 0
    suppressed: Counter = field(default_factory=Counter)  # action -> times suppressed
    suppressed_why: Counter = field(default_factory=Counter)  # (action, reason) -> times
    deferred: Counter = field(default_factory=Counter)  # action -> times deferred to the end of the quiet hours
    held_out: Counter = field(default_factory=Counter)  # action -> times its customer was held out of it
    erasures: int = 0  # customers forgotten on request


class OfflineReplay:
    """Feeds events through the core in file order; `states` may be any mapping (in memory by default)."""

    def __init__(self, model: Model, states: MutableMapping[str, CustomerState] | None = None) -> None:
        self.model = model
        self.states: MutableMapping[str, CustomerState] = {} if states is None else states
        self.clock: float | None = None
        self.counts = ReplayCounts()
        self._due: list[tuple[float, str]] = []  # heap; stale entries are skipped on pop
        self._due_of: dict[str, float] = {}

    def _keep(self, outcome: Outcome, emitted: Emitted) -> None:
        state = outcome.state
        customer_id = state.customer_id
        self.states[customer_id] = state
        due = next_due(state)
        if due is None:
            self._due_of.pop(customer_id, None)
        elif self._due_of.get(customer_id) != due:
            self._due_of[customer_id] = due
            heapq.heappush(self._due, (due, customer_id))
        if outcome.changes or outcome.actions or outcome.held_out:  # most events change nothing: skip the bookkeeping
            # (an action with no change is one released at the end of the quiet hours)
            emitted.add(outcome)
            self.counts.changes += len(outcome.changes)
            self.counts.actions += len(outcome.actions)
            for action in outcome.held_out:
                self.counts.held_out[action.action] += 1
        if outcome.suppressed:  # a suppression needs no change of this step (it may follow an earlier one)
            for item in outcome.suppressed:
                self.counts.suppressed[item.action] += 1
                self.counts.suppressed_why[(item.action, item.reason)] += 1
        for waiting in outcome.deferred:
            self.counts.deferred[waiting.action] += 1

    def advance_to(self, now: float) -> Emitted:
        """Move the clock to `now` (never back) and fire every inactivity check due by then."""
        emitted = Emitted()
        if self.clock is not None and now <= self.clock:
            return emitted
        self.clock = now
        while self._due and self._due[0][0] <= now:
            due, customer_id = heapq.heappop(self._due)
            if self._due_of.get(customer_id) != due:
                continue  # superseded by a later event of this customer
            del self._due_of[customer_id]
            self._keep(advance(self.states[customer_id], now, self.model, in_place=True), emitted)
        return emitted

    def due_by(self, now: float) -> list[str]:
        """The customers `advance_to(now)` would read, in its order: for stores that load ahead.

        Walks only the part of the heap at or below `now` (a heap's children are never earlier).
        """
        heap, found, todo = self._due, [], [0] if self._due else []
        while todo:
            i = todo.pop()
            due, customer_id = heap[i]
            if due <= now:
                if self._due_of.get(customer_id) == due:
                    found.append((due, customer_id))
                todo.extend(j for j in (2 * i + 1, 2 * i + 2) if j < len(heap))
        return [customer_id for _, customer_id in sorted(found)]

    def apply(self, event: TouchpointEvent) -> Emitted:
        """Apply one event: first the clock moves to its time, then the event is folded in."""
        ts = event.occurred_ts
        emitted = self.advance_to(ts) if self.clock is None or ts > self.clock else Emitted()
        self.counts.events += 1
        # In place: the replay owns its states and keeps only the new one, so the copy that keeps
        # `apply_event` pure for the worker would be pure cost here.
        outcome = apply_event(self.states.get(event.customer_id), event, self.model, in_place=True)
        if outcome.duplicate:
            self.counts.duplicates += 1
            return emitted
        if outcome.refused is not None:  # not applied: a dead letter, not an event (as in the worker)
            self.counts.events -= 1
            self.counts.conflicts += outcome.conflict
            emitted.refused = outcome.refused
            return emitted
        if outcome.erased is not None:  # forgotten at this point, as the worker does: later events start anew
            self.states.pop(event.customer_id, None)
            self._due_of.pop(event.customer_id, None)  # its heap entry is skipped as stale
            self.counts.erasures += 1
            emitted.erased = outcome.erased
            return emitted
        self._keep(outcome, emitted)
        return emitted
