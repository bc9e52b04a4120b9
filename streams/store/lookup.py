"""Finding a customer's input partition from their id alone, for the readers that have only the id.

A customer's keys carry the tag of the partition their events arrive on (`streams/store/keys.py`).
Producers keyed by customer id with Kafka's default partitioner put them on
`partition_for(customer id, partitions)`, so that partition is tried first; a producer with a
partitioner of its own may have put them elsewhere, so the other partitions are tried next (in one
pipelined round trip). A customer is found by their state or their quarantine record.
"""

from __future__ import annotations

from typing import Any

from streams.store.keys import Keys


def candidates(guess: int, count: int) -> list[int]:
    """The partitions to try: the guess first, then every other one of the `count` partitions."""
    return [guess] + [p for p in range(count) if p != guess]


def find(client: Any, keys: Keys, customer_id: str, guess: int, count: int) -> int | None:
    """The partition holding the customer's state or quarantine record (blocking client), None if none does."""
    if client.exists(keys.state(guess, customer_id), keys.quarantine(guess, customer_id)):
        return guess
    others = candidates(guess, count)[1:]
    pipe = client.pipeline(transaction=False)
    for p in others:
        pipe.exists(keys.state(p, customer_id), keys.quarantine(p, customer_id))
    return next((p for p, n in zip(others, pipe.execute(), strict=True) if n), None)


async def find_async(client: Any, keys: Keys, customer_id: str, guess: int, count: int) -> int | None:
    """As `find`, with an asyncio client."""
    if await client.exists(keys.state(guess, customer_id), keys.quarantine(guess, customer_id)):
        return guess
    others = candidates(guess, count)[1:]
    if not others:
        return None
    pipe = client.pipeline(transaction=False)
    for p in others:
        pipe.exists(keys.state(p, customer_id), keys.quarantine(p, customer_id))
    return next((p for p, n in zip(others, await pipe.execute(), strict=True) if n), None)
