"""The live shell around the pure core: batches of raw messages in, Redis and Kafka out.

Per batch: one Redis read (of the states this worker does not remember having written:
`streams/live/warm_states.py`), the core on every event, one atomic Redis write per
partition (state + due times + outbox + applied offset, pipelined together), one
publish of the outbox, one trim. The Kafka offsets are acknowledged only after that,
and an input offset at or below the partition's applied offset is skipped, so a
redelivered event changes nothing and emits nothing twice.

Nothing one message or one customer holds may stop the others: an event the core fails on, an
event dated outside the accepted range (`streams/core/timeguard.py`), and every event of a
customer whose stored state cannot be read (quarantined: `_quarantine`) are dead-lettered, and a
customer the sweep fails on loses their due time; the batch and the sweep go on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from schemas import Erasure, Touchpoint, TouchpointEvent
from streams.core import CustomerState, Outcome, advance, apply_event, next_due, reasons
from streams.core.engine import iso
from streams.core.erasure import audit as erasure_audit
from streams.core.intake import InputMessage, dead_letter, decode
from streams.core.model import Model
from streams.core.playbook.playbook import HELD_OUT
from streams.live import outbox
from streams.live.retry import retrying
from streams.live.warm_states import WarmStates
from streams.settings import Settings
from streams.store import JourneyStore, PartitionCommit, Unreadable
from streams.store.history import entry as history_entry

log = logging.getLogger(__name__)

#: Sends messages to Kafka and returns once the broker has acknowledged every one.
Publish = Callable[[list[outbox.OutboundMessage]], Awaitable[None]]


@dataclass
class Stats:
    """Running counts, for logs, the demo and the benchmark."""

    events: int = 0
    redelivered: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    changes: int = 0
    actions: int = 0
    suppressed: int = 0
    erasures: int = 0  # customers forgotten on request (journey_erasures_total)
    held_out: int = 0  # actions whose customer is in their holdout group: on the holdouts topic instead
    deferred: int = 0  # actions decided inside quiet hours, waiting in their customer's state for the window's end
    published: int = 0
    fenced_batches: int = 0
    conflicts: int = 0  # events dead-lettered because their id was applied before with other content
    quarantined: int = 0  # customers this worker found with a state it cannot read
    sweep_failures: int = 0  # customers whose due time was dropped because advancing them failed
    rewinds: int = 0  # a partition's mark in Redis went back under this worker: re-read from it
    offsets_lost: int = 0  # input offsets Kafka deleted (retention) before they were applied
    redis_round_trips: int = 0
    #: Dead letters per kind of reason: a bounded set (`streams/core/reasons.py`), whatever senders send.
    by_error: Counter[str] = field(default_factory=Counter)
    #: Dead letters per fixed label (`reasons.label`), for the labels of /metrics.
    dead_letters_by_label: Counter[str] = field(default_factory=Counter)
    #: (dimension, to, from) of every type change, and (action, None when sent or the suppression's kind):
    #: the labelled counts of /metrics, counted here so a scrape only reads them.
    changes_by: Counter = field(default_factory=Counter)
    actions_by: Counter = field(default_factory=Counter)
    #: Deferred actions per action name (/metrics).
    deferred_by: Counter = field(default_factory=Counter)

    def counters(self) -> dict[str, int]:
        """The plain counts, by name."""
        return {k: v for k, v in vars(self).items() if isinstance(v, int)}


@dataclass(slots=True)
class _Pending:
    """A partition's commit, and what the processor keeps beside it until it lands: the states it
    writes (to remember them) and its outbox entries as messages (to publish them unparsed)."""

    commit: PartitionCommit
    touched: dict[str, CustomerState] = field(default_factory=dict)
    messages: list[outbox.OutboundMessage] = field(default_factory=list)

    def send(self, message: outbox.OutboundMessage) -> None:
        self.messages.append(message)
        self.commit.outbox.append(outbox.entry(message))


class Processor:
    """Applies batches and sweeps for one worker. One at a time: both hold `lock`."""

    def __init__(
        self,
        settings: Settings,
        store: JourneyStore,
        publish: Publish,
        model: Model | None = None,
        wall: Callable[[], float] = time.time,
    ):
        self.settings = settings
        self.model = model if model is not None else settings.load_model()
        self.store = store
        self.publish = publish
        self.wall = wall  # the wall clock: event times are checked against it, in both clock modes
        self.guard = settings.time_guard()
        self.lock = asyncio.Lock()
        self.stats = Stats()
        self.warm = WarmStates(settings.warm_states)
        #: Per partition, the offset this worker last saw applied in Redis: where it sought to, or what
        #: it committed since. Redis's mark falling behind it means Redis lost what was applied.
        self.applied: dict[int, int] = {}
        #: Partitions to read again from Redis's mark before any more of their input is applied (the
        #: worker takes each out when it has sought it).
        self.rewound: set[int] = set()

    async def _redis(self, op: Callable[[], Awaitable], what: str):
        self.stats.redis_round_trips += 1
        return await retrying(op, what, self.settings.retry_max_backoff_s)

    def _emit(self, out: Outcome, pending: _Pending) -> None:
        s = self.settings
        key = out.state.customer_id
        if out.changes or out.actions or out.held_out:  # serialised first: should one fail, none is half-sent
            made = [outbox.message(s.topic_type_changes, key, change) for change in out.changes]
            entries = [history_entry(change) for change in out.changes]
            made += [outbox.message(s.topic_nurture_actions, key, action) for action in out.actions]
            made += [outbox.message(s.topic_holdouts, key, action) for action in out.held_out]
            for message in made:
                pending.send(message)
            if entries:
                pending.commit.history.setdefault(key, []).extend(entries)
        stats = self.stats
        for change in out.changes:
            stats.changes_by[change.dimension, change.to, change.from_] += 1
        for action in out.actions:
            stats.actions_by[action.action, None] += 1
        for suppressed in out.suppressed:
            stats.actions_by[suppressed.action, suppressed.kind] += 1
        if out.held_out:
            self.stats.held_out += len(out.held_out)
            for action in out.held_out:
                stats.actions_by[action.action, HELD_OUT] += 1
        self.stats.changes += len(out.changes)
        self.stats.actions += len(out.actions)
        self.stats.suppressed += len(out.suppressed)
        if out.deferred:
            self.stats.deferred += len(out.deferred)
            for waiting in out.deferred:
                stats.deferred_by[waiting.action] += 1

    def _erase(self, pending: _Pending, record: Erasure, states: dict[str, CustomerState]) -> None:
        """Forget the customer at this point of the batch: their state (its dedupe memory and deferred
        actions with it), history, due time and quarantine record are deleted by this commit, the copy
        this worker remembers is dropped, and tombstones and the audit record go out with it."""
        cid, commit, s = record.customer_id, pending.commit, self.settings
        pending.touched.pop(cid, None)
        states.pop(cid, None)
        commit.erased.add(cid)
        commit.history.pop(cid, None)  # this batch's earlier changes of theirs: not written at all
        commit.due[cid] = None
        self.warm.forget(cid)
        for topic in (s.topic_type_changes, s.topic_nurture_actions, s.topic_holdouts):
            pending.send(outbox.tombstone(topic, cid))
        pending.send(outbox.message(s.topic_erasures, cid, record))
        self.stats.erasures += 1
        log.info("customer forgotten on request (erasure %r)", record.erasure_id)

    def _dead_letter(self, pending: _Pending, msg: InputMessage, error: str) -> None:
        """Send the message to the dead-letter topic (cut to the publish limit) and count its reason's kind."""
        letter = dead_letter(msg, error, limit=self.settings.max_publish_bytes)
        pending.send(outbox.message(self.settings.topic_dead_letter, None, letter))
        self.stats.dead_lettered += 1
        reasons.count(self.stats.by_error, error)
        self.stats.dead_letters_by_label[reasons.label(error)] += 1

    def _finish(self, pending: _Pending) -> None:
        commit = pending.commit
        for cid, state in pending.touched.items():
            commit.states[cid] = state.to_json()
            commit.due[cid] = next_due(state)

    async def process_batch(self, messages: list[InputMessage]) -> None:
        """Apply a batch of input messages (any partitions, in offset order per partition)."""
        async with self.lock:
            try:
                await self._process_batch(messages)
            except BaseException:
                # States may have been changed in place without their commit landing: remember none.
                self.warm.forget_all()
                raise

    async def _load(
        self, partitions: list[int], wanted: dict[str, int], unreadable: dict[str, Unreadable]
    ) -> tuple[dict, dict[str, CustomerState]]:
        """The partitions' marks and the wanted customers' states (customer id -> partition), in one round trip
        for what must be read from Redis. States that cannot be read go into `unreadable`."""
        remembered, to_read = self._split_remembered(wanted)
        marks, states = await self._redis(lambda: self.store.load(partitions, to_read, unreadable), "Redis read")
        await self._add_remembered(remembered, marks, states, unreadable)
        return marks, states

    def _split_remembered(self, wanted: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
        """Which wanted customers (id -> partition) this worker remembers (`streams/live/warm_states.py`),
        and which to read."""
        warm = self.warm
        remembered = {cid: p for cid, p in wanted.items() if warm.get(p, cid) is not None}
        return remembered, {cid: p for cid, p in wanted.items() if cid not in remembered}

    async def _add_remembered(
        self,
        remembered: dict[str, int],
        marks: dict,
        states: dict[str, CustomerState],
        unreadable: dict[str, Unreadable],
    ) -> None:
        """Add the remembered states whose partition nobody else wrote since (the marks tell); read the others."""
        trusted = {p: self.warm.check(p, marks[p].writer) for p in set(remembered.values())}
        stale = {}
        for cid, p in remembered.items():
            state = self.warm.get(p, cid) if trusted[p] else None
            if state is None:
                stale[cid] = p
            else:
                states[cid] = state
        if stale:
            states.update(await self._redis(lambda: self.store.load_states(stale, unreadable), "Redis state read"))

    async def _quarantine(
        self, unreadable: dict[str, Unreadable], partitions: dict[str, int], found: dict[str, str]
    ) -> None:
        """Keep the unreadable states under their quarantine keys; log and count the customers new to it.

        The customer stays quarantined while their state cannot be read: their events are
        dead-lettered (none is applied to a state that is not there, nor to a fresh one that would
        overwrite it), their due time is dropped, and every other customer goes on. `journey explain`
        shows why; `journey release` ends it (README).
        """
        since = iso(self.wall())
        found_by = {cid: (partitions[cid], bad, found.get(cid, "")) for cid, bad in unreadable.items()}
        new = await self._redis(lambda: self.store.quarantine(found_by, since), "Redis quarantine")
        self.stats.quarantined += len(new)
        for cid in new:
            log.error(
                "customer %r quarantined: their state in Redis cannot be read (%r); their events are dead-lettered "
                "until it is repaired or released (journey explain / journey release)",
                cid,
                unreadable[cid].reason,
            )

    @staticmethod
    def _quarantined(bad: Unreadable) -> str:
        """The dead-letter reason of an event of a quarantined customer."""
        return (
            f"{reasons.QUARANTINED}: their stored state cannot be read ({bad.reason}); the event was not applied "
            "(journey explain shows the state, journey release ends the quarantine)"
        )

    def _decode(self, messages: list[InputMessage]) -> list[tuple[InputMessage, TouchpointEvent | str]]:
        """Each message's event, or why it cannot be one: undecodable, or dated outside the accepted range."""
        now = self.wall()
        earliest, latest = self.guard.bounds(now)
        max_bytes = self.settings.max_message_bytes
        decoded: list[tuple[InputMessage, TouchpointEvent | str]] = []
        for m in messages:
            ev = decode(m, max_bytes)
            if isinstance(ev, TouchpointEvent) and not earliest <= ev.occurred_ts <= latest:
                ev = self.guard.refusal(ev.occurred_ts, now) or ev
            decoded.append((m, ev))
        return decoded

    async def _process_batch(self, messages: list[InputMessage]) -> None:
        decoded = self._decode(messages)
        by_partition: dict[int, list] = defaultdict(list)
        wanted: dict[str, int] = {}
        for item in decoded:
            msg, ev = item
            by_partition[msg.partition].append(item)
            if isinstance(ev, TouchpointEvent):
                wanted[ev.customer_id] = msg.partition
        partitions = list(by_partition)
        unreadable: dict[str, Unreadable] = {}
        marks, states = await self._load(partitions, wanted, unreadable)
        if unreadable:
            found = {}
            for msg, ev in reversed(decoded):  # reversed: the first event of each customer is kept
                if isinstance(ev, TouchpointEvent) and ev.customer_id in unreadable:
                    found[ev.customer_id] = f"event at {msg.topic}[{msg.partition}] offset {msg.offset}"
            await self._quarantine(unreadable, wanted, found)

        commits = []
        for p, items in by_partition.items():
            mark = marks[p]
            if self._went_back(p, mark.offset):
                continue
            commit = PartitionCommit(p, mark.offset, mark.offset, mark.clock, token=self.warm.new_token())
            pending = _Pending(commit)
            touched = pending.touched
            failed: set[int] = set()  # ids of the events the core failed on (rare)
            for at, (msg, ev) in enumerate(items):
                if mark.offset is not None and msg.offset <= mark.offset:
                    self.stats.redelivered += 1
                    continue
                commit.new_offset = msg.offset
                if isinstance(ev, str):
                    self._dead_letter(pending, msg, ev)
                    continue
                cid = ev.customer_id
                if cid in unreadable and ev.touchpoint is Touchpoint.ERASURE_REQUEST:
                    # A quarantined customer can still be forgotten: their quarantined copy goes too, and
                    # their later events start a new profile.
                    del unreadable[cid]
                    self._erase(pending, erasure_audit(ev), states)
                    continue
                if cid in unreadable:
                    self._dead_letter(pending, msg, self._quarantined(unreadable[cid]))
                    continue
                self.stats.events += 1
                state = touched.get(cid)
                try:
                    # In place, the batch's later events of a customer too: a copy per event cost more than
                    # the rest of the core. Should the core fail half-way, the state is rebuilt instead.
                    out = apply_event(states.get(cid) if state is None else state, ev, self.model, in_place=True)
                except Exception as exc:  # a poison event must not stall the partition
                    log.exception("applying event %r failed; dead-lettering it", ev.event_id)
                    self._dead_letter(pending, msg, f"{reasons.INTERNAL}: {exc!r}")
                    self.stats.events -= 1  # counted as dead-lettered instead
                    failed.add(id(ev))
                    earlier = [
                        e
                        for m, e in items[:at]
                        if isinstance(e, TouchpointEvent)
                        and e.customer_id == cid
                        and (mark.offset is None or m.offset > mark.offset)
                        and id(e) not in failed
                    ]
                    rebuilt = await self._rebuild(p, cid, earlier)
                    if cid in touched:
                        # The earlier event that put the customer in `touched` is among `earlier`.
                        assert rebuilt is not None
                        touched[cid] = rebuilt
                    elif rebuilt is not None:
                        states[cid] = rebuilt
                    continue
                if out.duplicate:
                    self.stats.duplicates += 1
                    continue
                if out.refused is not None:  # the core would not apply it (and left the state as it was)
                    self._dead_letter(pending, msg, out.refused)
                    self.stats.events -= 1  # counted as dead-lettered instead
                    self.stats.conflicts += out.conflict
                    continue
                commit.clock = max(commit.clock, ev.occurred_ts)
                if out.erased is not None:
                    self._erase(pending, out.erased, states)
                    continue
                touched[cid] = out.state
                self._emit(out, pending)
            self._finish(pending)
            if commit.new_offset != mark.offset:
                commits.append(pending)
        await self._commit_and_publish(commits)

    def _went_back(self, partition: int, stored: int | None) -> bool:
        """Whether Redis's mark is behind what this worker saw applied there (Redis restored, or failed
        over to a lagging replica). The partition's input is then not applied: the worker reads it
        again from the mark, so what Redis lost is applied again, in order. Until the worker has sought
        it (and taken it out of `rewound`), none of the partition's input is applied."""
        if partition in self.rewound:
            return True
        held = self.applied.get(partition)
        if held is None or (stored is not None and stored >= held):
            return False
        log.error(
            "partition %d: Redis holds offset %s as applied, but this worker saw offset %d applied there; "
            "Redis lost writes (restored or failed over?): reading the partition again from %s",
            partition,
            stored,
            held,
            "its earliest offset" if stored is None else f"offset {stored + 1}",
        )
        self.stats.rewinds += 1
        del self.applied[partition]
        self.rewound.add(partition)
        return True

    async def _rebuild(self, partition: int, cid: str, earlier: list[TouchpointEvent]) -> CustomerState | None:
        """The customer's state as the batch's earlier events left it, after the core failed half-way
        through changing it in place: read from Redis again, and those events applied once more (the
        core is pure, so they give the same state; their outputs are already in the outbox)."""
        self.warm.forget(cid)
        # It was read (or absent) at the start of the batch; it cannot have become unreadable since.
        state = (await self._redis(lambda: self.store.load_states({cid: partition}), "Redis state read")).get(cid)
        for event in earlier:
            out = apply_event(state, event, self.model, in_place=True)
            if out.refused is None:  # a refused event left the state as it was (and may have made none)
                state = out.state
        return state

    async def _commit_and_publish(self, commits: list[_Pending]) -> None:
        """Write each partition's commit, remember the states that landed, publish their outboxes."""
        if not commits:
            return
        results = await self._redis(lambda: self.store.commit([pending.commit for pending in commits]), "Redis commit")
        ready: dict[int, list[outbox.OutboundMessage]] = {}
        to_drain = []
        for pending in commits:
            c = pending.commit
            result = results[c.partition]
            if result.applied:
                self.warm.remember(c.partition, c.token, pending.touched, result.previous_writer)
            else:  # its states were changed in place, and Redis does not hold them
                self.warm.forget_partitions([c.partition])
            if (result.applied or result.stored_offset == c.new_offset) and c.new_offset is not None:
                # A sweep's commit keeps the offset it read, which may be behind: it never lowers this.
                self.applied[c.partition] = max(c.new_offset, self.applied.get(c.partition, c.new_offset))
            if result.applied and result.outbox_before == 0:
                ready[c.partition] = pending.messages
            elif result.applied or result.stored_offset == c.new_offset:
                # Entries of an earlier run are waiting (or a retried commit had already landed):
                # publish the whole outbox, oldest first.
                to_drain.append(c.partition)
            else:
                # Whoever moved the mark (a new owner, or a restored Redis), this worker's position no
                # longer matches it: the worker reads the partition again from the mark, if it still holds it.
                self.applied.pop(c.partition, None)
                self.rewound.add(c.partition)
                stored, held = result.stored_offset, c.expected_offset
                if held is not None and (stored is None or stored < held):  # no owner moves a mark back
                    self.stats.rewinds += 1
                    log.error(
                        "partition %d: Redis holds offset %s as applied, but this worker had offset %d applied "
                        "there; Redis lost writes (restored or failed over?): batch dropped, reading the "
                        "partition again from %s",
                        c.partition,
                        stored,
                        held,
                        "its earliest offset" if stored is None else f"offset {stored + 1}",
                    )
                else:
                    self.stats.fenced_batches += 1
                    log.warning(
                        "partition %d moved on to offset %s while this worker held it at %s: batch dropped",
                        c.partition,
                        stored,
                        held,
                    )
        if to_drain:
            ready.update(await self._read_outboxes(to_drain))
        await self._publish_and_trim(ready)

    async def _read_outboxes(self, partitions: list[int]) -> dict[int, list[outbox.OutboundMessage]]:
        entries = await self._redis(lambda: self.store.read_outboxes(partitions), "Redis outbox read")
        return {p: [outbox.parse(e) for e in found] for p, found in entries.items()}

    async def _publish_and_trim(self, ready: dict[int, list[outbox.OutboundMessage]]) -> None:
        """Publish each partition's outbox messages, then trim as many entries off its outbox in Redis."""
        messages = [m for found in ready.values() for m in found]
        if messages:
            await retrying(lambda: self.publish(messages), "Kafka publish", self.settings.retry_max_backoff_s)
            self.stats.published += len(messages)
            await self._redis(
                lambda: self.store.trim_outboxes({p: len(e) for p, e in ready.items()}), "Redis outbox trim"
            )

    async def sweep(self, partitions: Iterable[int], wall_now: float | None = None, limit: int = 1000) -> int:
        """Fire the inactivity checks that fell due on these (owned) partitions, and publish any left-over outbox.

        Which clock decides is a setting: the wall clock, or each partition's own event clock (the
        latest event time applied on it). Not one clock for the whole topic: partitions are consumed
        at different speeds, and a partition that is ahead must not flag a customer whose next
        purchase still waits, unread, in a partition that is behind. Returns how many customers
        were advanced.
        """
        partitions = sorted(partitions)
        if not partitions:
            return 0
        async with self.lock:
            marks, backlog = await self._redis(lambda: self.store.marks_and_backlog(partitions), "Redis sweep read")
            # A mark gone back is noticed here too, so an idle partition is read again without waiting for input.
            partitions[:] = [p for p in partitions if not self._went_back(p, marks[p].offset)]
            leftovers = [p for p in partitions if backlog[p]]
            if leftovers:
                await self._publish_and_trim(await self._read_outboxes(leftovers))
            wall = time.time() if wall_now is None else wall_now
            now_by_partition = {
                p: (marks[p].clock if self.settings.clock == "event" else wall)
                for p in partitions
                if marks[p].clock or self.settings.clock == "wall"
            }
            if not now_by_partition:
                return 0
            due = await self._redis(lambda: self.store.due_customers(now_by_partition, limit), "Redis due read")
            wanted = {cid: p for p, members in due.items() for cid in members}
            if not wanted:
                return 0
            try:
                await self._sweep_due(due, wanted, marks, now_by_partition)
            except BaseException:  # as in `process_batch`: states may have changed in place, uncommitted
                self.warm.forget_all()
                raise
            return len(wanted)

    async def _sweep_due(
        self, due: dict[int, list[str]], wanted: dict[str, int], marks: dict, now_by_partition: dict[int, float]
    ) -> None:
        """Advance the due customers in place, then commit and publish what time changed.

        A customer whose state cannot be read is quarantined; one whose advance fails (any error, as for
        an event) loses their due time, logged and counted: their next event judges them again. Either
        way the other customers and the sweep go on, and the partition's sweep does not fail for good.
        """
        remembered, to_read = self._split_remembered(wanted)
        unreadable: dict[str, Unreadable] = {}
        states = (
            await self._redis(lambda: self.store.load_states(to_read, unreadable), "Redis state read")
            if to_read
            else {}
        )
        await self._add_remembered(remembered, marks, states, unreadable)
        if unreadable:
            topic = self.settings.topic_touchpoints
            found = {cid: f"sweep of {topic}[{wanted[cid]}]" for cid in unreadable}
            await self._quarantine(unreadable, wanted, found)
        commits = []
        for p, members in due.items():
            if not members:
                continue
            mark = marks[p]
            commit = PartitionCommit(p, mark.offset, mark.offset, mark.clock, token=self.warm.new_token())
            pending = _Pending(commit)
            for cid in members:
                state = states.get(cid)
                if state is None:  # gone, or quarantined: time alone has nothing to change
                    commit.due[cid] = None
                    continue
                try:  # in place: on failure the state is not written back, Redis keeps it as it was
                    out = advance(state, now_by_partition[p], self.model, in_place=True)
                    self._emit(out, pending)
                except Exception:  # contradicting rules (RulesLoop), a bug: stop watching them, keep the others going
                    log.exception(
                        "advancing customer %r at %s failed; their due time is dropped (their next event judges "
                        "them again)",
                        cid,
                        iso(now_by_partition[p]),
                    )
                    self.stats.sweep_failures += 1
                    self.warm.forget(cid)
                    commit.due[cid] = None
                    continue
                pending.touched[cid] = out.state
            self._finish(pending)
            commits.append(pending)
        await self._commit_and_publish(commits)
