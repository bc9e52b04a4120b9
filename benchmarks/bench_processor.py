"""CPU per event of the worker's processor alone: the core, Redis, the outbox, no Kafka.

Generated customers' events go through `Processor.process_batch` in batches of 4,000 into a fresh
redis-server; outputs are published to nowhere. Without the broker and the consumer, two versions
compare more steadily than with the pipeline benchmark; run each in turns from its own checkout:

    python benchmarks/bench_processor.py            # CPU µs per event
    python benchmarks/bench_processor.py --profile  # and the functions that cost most
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
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
from streams.store import JourneyStore, clients

PARTITIONS = 8
BATCH = 4000


async def _run(settings: Settings, customers: int, events: int, profile: cProfile.Profile | None) -> None:
    client = clients.async_client(settings)
    store = JourneyStore.for_settings(client, settings)

    async def publish(messages) -> None:  # outputs go nowhere: only the processor is measured
        return None

    processor = Processor(settings, store, publish)
    offsets: dict[int, int] = defaultdict(int)
    messages: list[RawMessage] = []
    for event in sample.generate(customers, seed=11):
        key = event["customer_id"].encode()
        p = partition_for(key, PARTITIONS)
        messages.append(RawMessage(settings.topic_touchpoints, p, offsets[p], key, json.dumps(event).encode()))
        offsets[p] += 1
    messages = messages[:events]
    started = time.process_time()
    if profile is not None:
        profile.enable()
    for first in range(0, len(messages), BATCH):
        await processor.process_batch(messages[first : first + BATCH])
    if profile is not None:
        profile.disable()
    cpu = time.process_time() - started
    await client.aclose()
    stats = processor.stats
    print(
        f"{len(messages):,} events ({stats.events:,} applied or duplicate, {stats.dead_lettered:,} dead-lettered): "
        f"{cpu / len(messages) * 1e6:.1f} µs CPU per event" + (" (profiled: slower)" if profile else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=6000)
    parser.add_argument("--events", type=int, default=80_000)
    parser.add_argument("--profile", action="store_true", help="also print the 30 costliest functions")
    args = parser.parse_args()
    stack = LocalStack()
    stack.workdir.mkdir(parents=True, exist_ok=True)
    stack.start_redis()
    try:
        # The generated events run to the end of 2026: accept them whatever today's date (as the demo does).
        settings = Settings(
            redis_url=stack.redis_url,
            key_prefix="bench",
            partitions=PARTITIONS,
            clock="event",
            max_event_ahead_s=10 * 365 * 86_400,
        )
        profile = cProfile.Profile() if args.profile else None
        asyncio.run(_run(settings, args.customers, args.events, profile))
        if profile is not None:
            pstats.Stats(profile).sort_stats("tottime").print_stats(30)
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
