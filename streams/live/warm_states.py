"""The states this worker last wrote to Redis, kept in memory so the next batch need not read them back.

Reading a state back (MGET and validating its JSON) is a large share of the worker's time, and
a worker mostly reads what it wrote itself a batch or two before. A remembered state is used only
while it is still what Redis holds, which the partition mark tells: every commit writes a token
of its own to the mark (`commit.lua`), and a partition's remembered states are trusted only while
the mark still holds the token of this worker's last commit there. Any other writer (another
worker after a rebalance, a worker that came back from a pause, a restored Redis) leaves a
different token, and the partition's states are forgotten and read from Redis again.

A state is remembered only after its commit has landed; whatever fails between changing a state
in place and that commit forgets everything (`Processor` calls `forget_all`). The most states
kept is a setting (`JOURNEY_WARM_STATES`); past it the least recently written are forgotten.
"""

from __future__ import annotations

import uuid
from itertools import count, islice

from streams.core import CustomerState


class WarmStates:
    """Per customer: the partition it was written on and its state; per partition: the last token written."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._states: dict[str, tuple[int, CustomerState]] = {}  # oldest write first
        self._tokens: dict[int, str] = {}
        self._writer = uuid.uuid4().hex[:12]
        self._serial = count(1)

    def __len__(self) -> int:
        return len(self._states)

    def new_token(self) -> str:
        """A token for one commit: unique to this process and this commit."""
        return f"{self._writer}:{next(self._serial)}"

    def get(self, partition: int, customer_id: str) -> CustomerState | None:
        """The remembered state, if it was written on this partition (call `check` for the partition first)."""
        entry = self._states.get(customer_id)
        if entry is None or entry[0] != partition:
            return None
        return entry[1]

    def check(self, partition: int, stored_token: str | None) -> bool:
        """Whether this partition's remembered states are still what Redis holds; forgets them if not."""
        if stored_token is not None and self._tokens.get(partition) == stored_token:
            return True
        if partition in self._tokens:
            self.forget_partitions([partition])
        return False

    def remember(self, partition: int, token: str, states: dict[str, CustomerState], replaced: str | None) -> None:
        """After a commit with this token has landed: these states are now what Redis holds.

        `replaced` is the token the commit found in the mark. When it is not this worker's last one,
        someone else wrote the partition after this worker read it, and only what this commit wrote
        is known.
        """
        if self.capacity <= 0:
            return
        if replaced is None or self._tokens.get(partition) != replaced:
            self.forget_partitions([partition])
        self._tokens[partition] = token
        kept = self._states
        for cid, state in states.items():
            kept.pop(cid, None)  # re-inserted last: the dict's order is the order of writes
            kept[cid] = (partition, state)
        excess = len(kept) - self.capacity
        if excess > 0:
            for cid in list(islice(kept, excess)):
                del kept[cid]

    def forget(self, customer_id: str) -> None:
        self._states.pop(customer_id, None)

    def forget_partitions(self, partitions) -> None:
        """Drop what was kept for these partitions (revoked, or written by someone else)."""
        gone = {p for p in partitions if p in self._tokens}  # a partition without a token has no states kept
        for p in gone:
            del self._tokens[p]
        if gone:
            self._states = {cid: entry for cid, entry in self._states.items() if entry[0] not in gone}

    def forget_all(self) -> None:
        self._states.clear()
        self._tokens.clear()
