"""Redis memory per customer, every key included (state, history, due entries, marks, outbox share).

Runs the live processor (the worker's own code, without Kafka: outputs are published to nowhere)
over generated customers into a fresh redis-server, then reads `INFO memory` and samples
`MEMORY USAGE` per key kind. Prints bytes per customer in all and per kind.

    python benchmarks/bench_redis_memory.py --customers 50000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable as a plain script from a checkout

from streams.core.intake import RawMessage
from streams.kafka.publish import partition_for
from streams.live.processor import Processor
from streams.local import sample
from streams.local.stack import LocalStack
from streams.settings import Settings
from streams.store import JourneyStore, Keys, clients

PARTITIONS = 8


async def _fill(settings: Settings, customers: int, batch: int) -> tuple[int, int]:
    client = clients.async_client(settings)
    store = JourneyStore.for_settings(client, settings)

    async def publish(messages) -> None:  # outputs go nowhere: only Redis is measured
        return None

    processor = Processor(settings, store, publish)
    offsets: dict[int, int] = defaultdict(int)
    pending: list[RawMessage] = []
    events = 0
    started = time.monotonic()
    for event in sample.generate(customers, seed=11):
        key = event["customer_id"].encode()
        p = partition_for(key, PARTITIONS)
        pending.append(RawMessage(settings.topic_touchpoints, p, offsets[p], key, json.dumps(event).encode()))
        offsets[p] += 1
        events += 1
        if len(pending) >= batch:
            await processor.process_batch(pending)
            pending = []
        if events % 50_000 == 0:
            print(f"  {events:,} events applied ({time.monotonic() - started:.0f} s)", file=sys.stderr)
    if pending:
        await processor.process_batch(pending)
    await client.aclose()
    return events, processor.stats.events


def _usage_by_kind(settings: Settings, limit: int = 2000) -> dict[str, tuple[int, int]]:
    """(keys sampled, bytes) per key kind, from MEMORY USAGE of a sample of each kind's keys."""
    client = clients.sync_client(settings)
    kinds: dict[str, list[int]] = defaultdict(list)
    for key in client.scan_iter(match=f"{settings.key_prefix}:*", count=5000):
        kind = key.decode().split(":")[2]  # P:{pN}:<kind>:...
        if len(kinds[kind]) < limit:
            kinds[kind].append(int(client.memory_usage(key, samples=0) or 0))
    counts = {
        kind: sum(1 for _ in client.scan_iter(match=f"{settings.key_prefix}:{{p*}}:{kind}*", count=5000))
        for kind in kinds
    }
    client.close()
    return {kind: (counts[kind], int(sum(v) / len(v) * counts[kind])) for kind, v in kinds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=4000)
    parser.add_argument(
        "--history-length", type=int, default=None, help="JOURNEY_HISTORY_LENGTH (default: the setting's)"
    )
    args = parser.parse_args()
    with LocalStack() as stack:
        extra = {} if args.history_length is None else {"history_length": args.history_length}
        stack_settings = Settings(redis_url=stack.redis_url, key_prefix="mem", partitions=PARTITIONS, **extra)
        before = clients.sync_client(stack_settings).info("memory")["used_memory"]
        events, applied = asyncio.run(_fill(stack_settings, args.customers, args.batch))
        info = clients.sync_client(stack_settings).info("memory")
        used = info["used_memory"] - before
        states = sum(
            1
            for _ in clients.sync_client(stack_settings).scan_iter(
                match=Keys.for_settings(stack_settings).state_pattern, count=5000
            )
        )
        print(f"{args.customers:,} customers generated, {events:,} events, {applied:,} applied, {states:,} states")
        print(f"used_memory grew by {used:,} bytes: {used / states:,.0f} bytes per customer (all keys)")
        for kind, (n, total) in sorted(_usage_by_kind(stack_settings).items(), key=lambda kv: -kv[1][1]):
            print(f"  {kind:>7}: {n:>7,} keys, ~{total / states:,.0f} bytes per customer (MEMORY USAGE, sampled)")


if __name__ == "__main__":
    main()
