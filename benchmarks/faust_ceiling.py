"""Faust's own ceiling for `bench_pipeline.py`: an agent that only takes batches and acknowledges them.

Started by the benchmark as `faust -A benchmarks.faust_ceiling worker`, with the same faust settings as
the Faust engine (`streams.live.faust_app.app_options`: broker, timeouts, poll and buffer sizes) and the
same `noack_take(JOURNEY_BATCH_SIZE, within=JOURNEY_BATCH_WITHIN_S)`, but no processing: what faust's
stream machinery alone costs per event. After each batch it writes how many events it has taken and
when the first and the latest batch came to the Redis hash `BENCH_CEILING_KEY` (one round trip a batch).
"""

from __future__ import annotations

import os
import time
from typing import Any

import faust

from streams.live.faust_app import app_options
from streams.settings import Settings
from streams.store import clients as redis_clients

settings = Settings()
app = faust.App(settings.consumer_group, **app_options(settings))
touchpoints = app.topic(
    settings.topic_touchpoints, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
)
KEY = os.environ.get("BENCH_CEILING_KEY", "bench:faust-ceiling")


@app.agent(touchpoints, concurrency=1)
async def take_and_ack(stream: Any) -> None:
    redis = redis_clients.async_client(settings)
    taken, first = 0, None
    async for events in stream.noack_take(settings.batch_size, within=settings.batch_within_s):
        now = time.time()
        first = first or now
        taken += len(events)
        for event in events:
            await stream.ack(event)
        await redis.hset(KEY, mapping={"taken": taken, "first": first, "last": time.time()})
