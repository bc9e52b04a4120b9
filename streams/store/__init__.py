"""Redis: the per-customer state, due times, partition marks and outbox, a batch at a time; every key name."""

from streams.store.journey import CommitResult, JourneyStore, PartitionCommit, PartitionMark, Unreadable
from streams.store.keys import Keys

__all__ = ["CommitResult", "JourneyStore", "Keys", "PartitionCommit", "PartitionMark", "Unreadable"]
