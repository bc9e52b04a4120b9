"""Per-customer state, due times and the outbox in Redis, read and written a batch at a time.

A batch costs a constant number of round trips whatever its size: one pipelined read
(partition marks + MGET of the customers' states) and one pipelined write (one Lua
script per partition, each atomic). The key names are in `streams/store/keys.py`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources

import redis.asyncio as aioredis
from pydantic import ValidationError

from streams.core import CustomerState
from streams.core.intake import bounded_error, describe
from streams.store.keys import Keys

COMMIT_LUA = resources.files("streams.store").joinpath("lua/commit.lua").read_text()
ADVANCE_CLOCK_LUA = resources.files("streams.store").joinpath("lua/advance_clock.lua").read_text()
#: Keep a quarantine record unless the customer has one already (the first finding is the one to keep).
QUARANTINE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'reason', ARGV[2], 'since', ARGV[3], 'found', ARGV[4])
return 1
"""
#: Longest reason kept for a state that cannot be read (characters).
UNREADABLE_REASON_CHARS = 500


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A stored state that does not decode (an older version's, corrupted, poisoned): the raw bytes and why."""

    raw: bytes
    reason: str


def decode_state(raw: bytes | str) -> CustomerState | Unreadable:
    """The state a Redis record holds, or why it cannot be read (never raises on what Redis holds)."""
    try:
        return CustomerState.from_json(raw)
    except ValidationError as exc:
        reason = describe(exc).removeprefix("message: ")  # the whole record: not JSON, not an object
    except ValueError as exc:  # not UTF-8, and the like
        reason = f"{type(exc).__name__}: {exc}"
    return Unreadable(raw if isinstance(raw, bytes) else raw.encode(), bounded_error(reason, UNREADABLE_REASON_CHARS))


@dataclass(slots=True)
class PartitionMark:
    """How far a partition has been applied, its event-time clock, and who wrote it last."""

    offset: int | None = None
    clock: float = 0.0
    writer: str | None = None


@dataclass(slots=True)
class PartitionCommit:
    """Everything one partition's batch writes, in one atomic script call."""

    partition: int
    expected_offset: int | None
    new_offset: int | None
    clock: float
    states: dict[str, bytes] = field(default_factory=dict)  # compact JSON: no newlines
    due: dict[str, float | None] = field(default_factory=dict)
    outbox: list[bytes] = field(default_factory=list)  # `outbox.entry`s: no newlines
    token: str = ""  # this commit's writer token (`WarmStates.new_token`)


@dataclass(slots=True)
class CommitResult:
    applied: bool
    outbox_before: int = 0
    stored_offset: int | None = None
    previous_writer: str | None = None  # the token this commit replaced


def _offset(raw: bytes | str | None) -> int | None:
    return int(raw) if raw not in (None, b"", "") else None


def _text(raw: bytes | str | None) -> str | None:
    return (raw.decode() if isinstance(raw, bytes) else raw) or None


def _mark(offset, clock, writer) -> PartitionMark:
    """A mark from its HMGET reply (offset, clock, writer)."""
    return PartitionMark(_offset(offset), float(clock) if clock else 0.0, _text(writer))


def _decode_into(
    states: dict[str, CustomerState],
    unreadable: dict[str, Unreadable] | None,
    customer_ids: list[str],
    raws: list,
) -> None:
    for cid, raw in zip(customer_ids, raws, strict=True):
        if raw is None:
            continue
        if unreadable is None:
            states[cid] = CustomerState.from_json(raw)
            continue
        state = decode_state(raw)
        if isinstance(state, Unreadable):
            unreadable[cid] = state
        else:
            states[cid] = state


class JourneyStore:
    """The processor's Redis access. Every method is one round trip."""

    def __init__(self, client: aioredis.Redis, prefix: str, topic: str, history_topic: str = "") -> None:
        self.client = client
        self.keys = Keys(prefix, topic)
        self.history_topic = history_topic  # outbox entries on this topic also go to the customer's history
        self._commit = client.register_script(COMMIT_LUA)
        self._advance_clock = client.register_script(ADVANCE_CLOCK_LUA)
        self._quarantine = client.register_script(QUARANTINE_LUA)

    @classmethod
    def for_settings(cls, client: aioredis.Redis, settings) -> JourneyStore:
        return cls(client, settings.key_prefix, settings.topic_touchpoints, settings.topic_type_changes)

    def history_key(self, customer_id: str) -> str:
        """The customer's latest type changes (newest first, 20 kept), for `journey explain`."""
        return self.keys.history(customer_id)

    async def history(self, customer_id: str) -> list[bytes | str]:
        return await self.client.lrange(self.history_key(customer_id), 0, -1)

    def state_key(self, customer_id: str) -> str:
        return self.keys.state(customer_id)

    def mark_key(self, partition: int) -> str:
        return self.keys.mark(partition)

    def due_key(self, partition: int) -> str:
        return self.keys.due(partition)

    def outbox_key(self, partition: int) -> str:
        return self.keys.outbox(partition)

    def quarantine_key(self, customer_id: str) -> str:
        return self.keys.quarantine(customer_id)

    async def load(
        self, partitions: list[int], customer_ids: list[str], unreadable: dict[str, Unreadable] | None = None
    ) -> tuple[dict[int, PartitionMark], dict[str, CustomerState]]:
        """Marks of the partitions and the stored states of the customers (absent ones are left out).

        A state that cannot be read goes into `unreadable` (left out of the states); without
        `unreadable`, it raises, as a bug would.
        """
        pipe = self.client.pipeline(transaction=False)
        for p in partitions:
            pipe.hmget(self.mark_key(p), "offset", "clock", "writer")
        if customer_ids:
            pipe.mget([self.state_key(c) for c in customer_ids])
        replies = await pipe.execute()
        marks = {p: _mark(*reply) for p, reply in zip(partitions, replies[: len(partitions)], strict=True)}
        states: dict[str, CustomerState] = {}
        if customer_ids:
            _decode_into(states, unreadable, customer_ids, replies[len(partitions)])
        return marks, states

    async def commit(self, commits: list[PartitionCommit]) -> dict[int, CommitResult]:
        """Write every partition's batch; each partition's write is atomic and fenced by its offset."""
        pipe = self.client.pipeline(transaction=False)
        for c in commits:
            keys = [self.mark_key(c.partition), self.outbox_key(c.partition), self.due_key(c.partition)]
            keys += [self.state_key(cid) for cid in c.states]
            args = [
                "" if c.expected_offset is None else c.expected_offset,
                "" if c.new_offset is None else c.new_offset,
                repr(c.clock),
                b"\n".join(c.states.values()),
                json.dumps(list(c.due.items())),
                b"\n".join(c.outbox),
                self.history_topic,
                self.history_key(""),
                c.token,
            ]
            await self._commit(keys=keys, args=args, client=pipe)  # queues EVALSHA on the pipeline
        replies = await pipe.execute()
        results = {}
        for c, (ok, value, *writer) in zip(commits, replies, strict=True):
            if ok == 1:
                previous = _text(writer[0]) if writer else None
                results[c.partition] = CommitResult(True, outbox_before=int(value), previous_writer=previous)
            else:
                results[c.partition] = CommitResult(False, stored_offset=_offset(value))
        return results

    async def marks_and_backlog(self, partitions: list[int]) -> tuple[dict[int, PartitionMark], dict[int, int]]:
        """Marks of the partitions, and how many outbox entries each still holds."""
        pipe = self.client.pipeline(transaction=False)
        for p in partitions:
            pipe.hmget(self.mark_key(p), "offset", "clock", "writer")
            pipe.llen(self.outbox_key(p))
        replies = await pipe.execute()
        marks, backlog = {}, {}
        for i, p in enumerate(partitions):
            marks[p] = _mark(*replies[2 * i])
            backlog[p] = int(replies[2 * i + 1])
        return marks, backlog

    async def due_customers(self, now_by_partition: dict[int, float], limit: int) -> dict[int, list[str]]:
        """Customers whose due time has come, per partition, at most `limit` each."""
        pipe = self.client.pipeline(transaction=False)
        for p, now in now_by_partition.items():
            pipe.zrangebyscore(self.due_key(p), "-inf", repr(now), start=0, num=limit)
        replies = await pipe.execute()
        return {
            p: [m.decode() if isinstance(m, bytes) else m for m in members]
            for p, members in zip(now_by_partition, replies, strict=True)
        }

    async def due_counts(self, now_by_partition: dict[int, float]) -> dict[int, int]:
        """How many customers' due time has come, per partition (what the next sweeps have to do)."""
        pipe = self.client.pipeline(transaction=False)
        for p, now in now_by_partition.items():
            pipe.zcount(self.due_key(p), "-inf", repr(now))
        return {p: int(n) for p, n in zip(now_by_partition, await pipe.execute(), strict=True)}

    async def load_states(
        self, customer_ids: list[str], unreadable: dict[str, Unreadable] | None = None
    ) -> dict[str, CustomerState]:
        """The stored states of the customers (absent ones are left out; unreadable ones as in `load`)."""
        if not customer_ids:
            return {}
        raws = await self.client.mget([self.state_key(c) for c in customer_ids])
        states: dict[str, CustomerState] = {}
        _decode_into(states, unreadable, customer_ids, raws)
        return states

    async def quarantine(self, found: dict[str, tuple[Unreadable, str]], since: str) -> list[str]:
        """Keep each unreadable state, why, since when and who found it, under the customer's quarantine key.

        A customer quarantined already keeps their first record. Returns the customers newly
        quarantined. The state key is left as it is: the customer stays quarantined while it
        cannot be read, and a version that reads it again, or a repaired state, ends it.
        """
        if not found:
            return []
        pipe = self.client.pipeline(transaction=False)
        for cid, (bad, where) in found.items():
            await self._quarantine(
                keys=[self.quarantine_key(cid)], args=[bad.raw, bad.reason, since, where], client=pipe
            )
        replies = await pipe.execute()
        return [cid for cid, new in zip(found, replies, strict=True) if new == 1]

    async def read_outboxes(self, partitions: list[int]) -> dict[int, list[bytes]]:
        pipe = self.client.pipeline(transaction=False)
        for p in partitions:
            pipe.lrange(self.outbox_key(p), 0, -1)
        return dict(zip(partitions, await pipe.execute(), strict=True))

    async def trim_outboxes(self, published: dict[int, int]) -> None:
        """Drop the first `count` entries of each partition's outbox, once Kafka has acknowledged them."""
        pipe = self.client.pipeline(transaction=False)
        for p, count in published.items():
            if count:
                pipe.ltrim(self.outbox_key(p), count, -1)
        await pipe.execute()

    async def advance_clock(self, partitions: list[int], until: float) -> dict[int, float]:
        """Move the event clock of every partition to `until`, never back (one atomic script).

        Returns each partition's clock afterwards. The worker's next sweep (`JOURNEY_CLOCK=event`)
        fires the inactivity checks due by then; commit.lua keeps the stored clock from moving back,
        so a batch that read the mark before this cannot undo it.
        """
        if not partitions:
            return {}
        keys = [self.mark_key(p) for p in partitions]
        replies = await self._advance_clock(keys=keys, args=[repr(float(until))])
        return {p: float(raw) for p, raw in zip(partitions, replies, strict=True)}
