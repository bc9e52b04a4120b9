"""Faust's own ceiling for `bench_pipeline.py`: an agent that only takes batches and acknowledges them.

Started by the benchmark as `faust -A benchmarks.faust_ceiling worker`, with the same faust settings as
the Faust engine (`streams.live.faust_app.app_options`: broker, timeouts, poll and buffer sizes) and the
same `noack_take(JOURNEY_BATCH_SIZE, within=JOURNEY_BATCH_WITHIN_S)`, but no processing: what faust's
stream machinery alone costs per event. After each batch it writes how many events it has taken and
when the first and the latest batch came to the Redis hash `BENCH_CEILING_KEY` (one round trip a batch).

`BENCH_CEILING_INTAKE` says which fetch loop it runs: `faust` (default), faust's own; `fast`, the Faust
engine's (`streams/live/faust_intake.py`: no task per delivered message), so that the engine can be
compared with faust as shipped and with a ceiling that fetches as it does.
"""

from __future__ import annotations

import os
import time
from typing import Any

import faust

from streams.live.faust_app import app_options
from streams.live.faust_intake import FastDrainTransport, ack_all
from streams.settings import Settings
from streams.store import clients as redis_clients


class FastIntakeApp(faust.App):
    """faust's App with the Faust engine's fetch loop."""

    def _new_transport(self) -> Any:
        return FastDrainTransport(self.conf.broker_consumer, self)


settings = Settings()
INTAKE = os.environ.get("BENCH_CEILING_INTAKE", "faust")
if INTAKE not in ("faust", "fast"):
    raise SystemExit(f"BENCH_CEILING_INTAKE must be faust or fast, not {INTAKE!r}")
app = (FastIntakeApp if INTAKE == "fast" else faust.App)(settings.consumer_group, **app_options(settings))
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
        if INTAKE == "fast":
            ack_all(stream, events)  # as the Faust engine acknowledges a batch
        else:
            for event in events:
                await stream.ack(event)
        await redis.hset(KEY, mapping={"taken": taken, "first": first, "last": time.time()})
