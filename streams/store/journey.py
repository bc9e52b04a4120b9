"""Per-customer state, due times and the outbox in Redis, read and written a batch at a time.

A batch costs a constant number of round trips whatever its size: one pipelined read
(partition marks + one MGET of the customers' states per partition) and one pipelined write (one Lua
script per partition, each atomic). The key names are in `streams/store/keys.py`.

Every command touches the keys of one input partition only (one hash tag), so the same calls work
on a single Redis and on a Redis Cluster (`redis.asyncio.cluster.RedisCluster`): its pipeline sends
each command to the node of its slot. Scripts go through EVALSHA as plain commands (the cluster
pipeline has no script registry): they are loaded on every primary first, and a call a node refuses
with NOSCRIPT (restarted, failed over) is loaded again and run once more on its own.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from pydantic import ValidationError
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, ResponseError

from streams.core import CustomerState
from streams.core.intake import bounded_error, describe
from streams.store import history
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
    #: Per customer with type changes, their history entries in order (`streams/store/history.py`): no newlines.
    history: dict[str, list[bytes]] = field(default_factory=dict)
    token: str = ""  # this commit's writer token (`WarmStates.new_token`)
    #: Customers erased in this batch: their state, history and quarantine keys are deleted first.
    erased: set[str] = field(default_factory=set)


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


#: A Redis client of either kind: one server, or a cluster.
Client = aioredis.Redis | RedisCluster
#: How many history entries a customer keeps unless the settings say.
HISTORY_LENGTH = 3


def by_partition(customers: Mapping[str, int]) -> dict[int, list[str]]:
    """The customers (id -> input partition) grouped by partition, in their order."""
    grouped: dict[int, list[str]] = defaultdict(list)
    for cid, p in customers.items():
        grouped[p].append(cid)
    return grouped


@dataclass(frozen=True, slots=True)
class _Script:
    text: str
    sha: str

    @classmethod
    def of(cls, text: str) -> _Script:
        return cls(text, hashlib.sha1(text.encode()).hexdigest())


class JourneyStore:
    """The processor's Redis access. Every method is one round trip (a NOSCRIPT reply costs more)."""

    def __init__(self, client: Client, prefix: str, topic: str, history_length: int = HISTORY_LENGTH) -> None:
        self.client = client
        self.keys = Keys(prefix, topic)
        self.history_length = history_length
        self._commit = _Script.of(COMMIT_LUA)
        self._advance_clock = _Script.of(ADVANCE_CLOCK_LUA)
        self._quarantine = _Script.of(QUARANTINE_LUA)
        self._loaded = False

    @classmethod
    def for_settings(cls, client: Client, settings: Any) -> JourneyStore:
        return cls(client, settings.key_prefix, settings.topic_touchpoints, settings.history_length)

    def history_key(self, partition: int, customer_id: str) -> str:
        """The customer's latest type changes (newest first, `history_length` kept), for `journey explain`."""
        return self.keys.history(partition, customer_id)

    async def history(self, partition: int, customer_id: str) -> list[bytes | str]:
        """The customer's stored history entries, latest first (a string; an earlier version's list too)."""
        key = self.history_key(partition, customer_id)
        try:
            return history.split(await self.client.get(key))
        except ResponseError as exc:
            if "WRONGTYPE" not in str(exc):
                raise
            return await self.client.lrange(key, 0, -1)

    def state_key(self, partition: int, customer_id: str) -> str:
        return self.keys.state(partition, customer_id)

    def mark_key(self, partition: int) -> str:
        return self.keys.mark(partition)

    def due_key(self, partition: int) -> str:
        return self.keys.due(partition)

    def outbox_key(self, partition: int) -> str:
        return self.keys.outbox(partition)

    def quarantine_key(self, partition: int, customer_id: str) -> str:
        return self.keys.quarantine(partition, customer_id)

    def _pipeline(self) -> Any:
        return self.client.pipeline(transaction=False)

    async def _load_scripts(self) -> None:
        """Load the scripts (on a cluster: on every primary, redis-py's default for SCRIPT LOAD)."""
        for script in (self._commit, self._advance_clock, self._quarantine):
            await self.client.script_load(script.text)
        self._loaded = True

    async def _run_scripts(self, calls: Sequence[tuple[_Script, list, list]]) -> list[Any]:
        """Run each (script, keys, args) call, pipelined; the replies in order. A call refused with NOSCRIPT
        did not run: it is run again, on its own, once the scripts are loaded again."""
        if not calls:
            return []
        if not self._loaded:
            await self._load_scripts()
        pipe = self._pipeline()
        for script, keys, args in calls:
            pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        replies = await pipe.execute(raise_on_error=False)
        for i, reply in enumerate(replies):
            if isinstance(reply, NoScriptError):
                await self._load_scripts()
                script, keys, args = calls[i]
                replies[i] = await self.client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    def _queue_states(self, pipe: Any, customers: Mapping[str, int]) -> list[tuple[int, list[str]]]:
        """Queue one MGET per partition (one slot each); the (partition, ids) of each, in order."""
        groups = list(by_partition(customers).items())
        for p, ids in groups:
            pipe.execute_command("MGET", *[self.state_key(p, c) for c in ids])
        return groups

    async def load(
        self, partitions: list[int], customers: Mapping[str, int], unreadable: dict[str, Unreadable] | None = None
    ) -> tuple[dict[int, PartitionMark], dict[str, CustomerState]]:
        """Marks of the partitions and the stored states of the customers (id -> input partition; absent
        ones are left out).

        A state that cannot be read goes into `unreadable` (left out of the states); without
        `unreadable`, it raises, as a bug would.
        """
        pipe = self._pipeline()
        for p in partitions:
            pipe.hmget(self.mark_key(p), "offset", "clock", "writer")
        groups = self._queue_states(pipe, customers)
        replies = await pipe.execute()
        marks = {p: _mark(*reply) for p, reply in zip(partitions, replies[: len(partitions)], strict=True)}
        states: dict[str, CustomerState] = {}
        for (_, ids), raws in zip(groups, replies[len(partitions) :], strict=True):
            _decode_into(states, unreadable, ids, raws)
        return marks, states

    async def commit(self, commits: list[PartitionCommit]) -> dict[int, CommitResult]:
        """Write every partition's batch; each partition's write is atomic and fenced by its offset."""
        calls = []
        for c in commits:
            p = c.partition
            keys = [self.mark_key(p), self.outbox_key(p), self.due_key(p)]
            keys += [self.state_key(p, cid) for cid in c.states]
            keys += [self.history_key(p, cid) for cid in c.history]
            for cid in c.erased:
                keys += [self.state_key(p, cid), self.history_key(p, cid), self.quarantine_key(p, cid)]
            args = [
                "" if c.expected_offset is None else c.expected_offset,
                "" if c.new_offset is None else c.new_offset,
                repr(c.clock),
                b"\n".join(c.states.values()),
                json.dumps(list(c.due.items())),
                b"\n".join(c.outbox),
                b"\n".join(entry for entries in c.history.values() for entry in entries),
                json.dumps([len(entries) for entries in c.history.values()]),
                c.token,
                self.history_length,
                3 * len(c.erased),
            ]
            calls.append((self._commit, keys, args))
        replies = await self._run_scripts(calls)
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
        pipe = self._pipeline()
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
        pipe = self._pipeline()
        for p, now in now_by_partition.items():
            pipe.zrangebyscore(self.due_key(p), "-inf", repr(now), start=0, num=limit)
        replies = await pipe.execute()
        return {
            p: [m.decode() if isinstance(m, bytes) else m for m in members]
            for p, members in zip(now_by_partition, replies, strict=True)
        }

    async def due_counts(self, now_by_partition: dict[int, float]) -> dict[int, int]:
        """How many customers' due time has come, per partition (what the next sweeps have to do)."""
        pipe = self._pipeline()
        for p, now in now_by_partition.items():
            pipe.zcount(self.due_key(p), "-inf", repr(now))
        return {p: int(n) for p, n in zip(now_by_partition, await pipe.execute(), strict=True)}

    async def load_states(
        self, customers: Mapping[str, int], unreadable: dict[str, Unreadable] | None = None
    ) -> dict[str, CustomerState]:
        """The stored states of the customers (id -> input partition; absent ones are left out; unreadable
        ones as in `load`)."""
        if not customers:
            return {}
        pipe = self._pipeline()
        groups = self._queue_states(pipe, customers)
        states: dict[str, CustomerState] = {}
        for (_, ids), raws in zip(groups, await pipe.execute(), strict=True):
            _decode_into(states, unreadable, ids, raws)
        return states

    async def quarantine(self, found: Mapping[str, tuple[int, Unreadable, str]], since: str) -> list[str]:
        """Keep each unreadable state (customer id -> input partition, the state, who found it), why,
        since when and who found it, under the customer's quarantine key.

        A customer quarantined already keeps their first record. Returns the customers newly
        quarantined. The state key is left as it is: the customer stays quarantined while it
        cannot be read, and a version that reads it again, or a repaired state, ends it.
        """
        calls = [
            (self._quarantine, [self.quarantine_key(p, cid)], [bad.raw, bad.reason, since, where])
            for cid, (p, bad, where) in found.items()
        ]
        replies = await self._run_scripts(calls)
        return [cid for cid, new in zip(found, replies, strict=True) if new == 1]

    async def read_outboxes(self, partitions: list[int]) -> dict[int, list[bytes]]:
        pipe = self._pipeline()
        for p in partitions:
            pipe.lrange(self.outbox_key(p), 0, -1)
        return dict(zip(partitions, await pipe.execute(), strict=True))

    async def trim_outboxes(self, published: dict[int, int]) -> None:
        """Drop the first `count` entries of each partition's outbox, once Kafka has acknowledged them."""
        pipe = self._pipeline()
        for p, count in published.items():
            if count:
                pipe.ltrim(self.outbox_key(p), count, -1)
        await pipe.execute()

    async def advance_clock(self, partitions: Iterable[int], until: float) -> dict[int, float]:
        """Move the event clock of every partition to `until`, never back (one script call per partition,
        pipelined: each mark is in its own slot).

        Returns each partition's clock afterwards. The worker's next sweep (`JOURNEY_CLOCK=event`)
        fires the inactivity checks due by then; commit.lua keeps the stored clock from moving back,
        so a batch that read the mark before this cannot undo it.
        """
        partitions = list(partitions)
        calls = [(self._advance_clock, [self.mark_key(p)], [repr(float(until))]) for p in partitions]
        replies = await self._run_scripts(calls)
        return {p: float(reply[0]) for p, reply in zip(partitions, replies, strict=True)}
