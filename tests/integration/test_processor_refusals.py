"""The processor against a real Redis with events the core refuses: an id reused for other content, an
order in a currency without a rate. Each is dead-lettered with the core's reason and counted; the state
is left as it was; an exact re-send stays a quiet duplicate; and the offline replay of the same events
dead-letters the same ones with the same reasons and emits the same changes (live = offline).

Kafka plays no part: the processor hands its outputs to a `publish` callable, which this test keeps.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

import pytest
import redis.asyncio as aioredis

from streams.core import CustomerState
from streams.core.intake import RawMessage
from streams.core.model import Model, load_model
from streams.core.money import Money
from streams.live.processor import Processor, Stats
from streams.replay.run import run_replay
from streams.replay.sources import iter_records
from streams.settings import Settings
from streams.store import JourneyStore

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 1, 9, tzinfo=UTC)
MODEL = load_model(money=Money("EUR", MappingProxyType({"JPY": 0.0061})))


def _event(event_id: str, day: int, kind: str, **payload: object) -> dict:
    data = {
        "event_id": event_id,
        "customer_id": "c1",
        "stage": {"page_view": "pre_purchase", "purchase": "purchase"}[kind],
        "touchpoint": kind,
        "channel": "web",
        "occurred_at": (START + timedelta(days=day)).isoformat(),
    }
    if payload:
        data["payload"] = {"kind": "order", **payload}
    return data


#: Batches in turn; the last one by a new processor, which must read c1's state (and its contents) from Redis.
BATCHES = [
    [
        _event("e1", 0, "page_view"),
        _event("e1", 1, "purchase", amount=500, currency="EUR"),  # conflict: e1 was a page view
        _event("e1", 0, "page_view"),  # exact re-send: a quiet duplicate
        _event("e2", 2, "purchase", amount=10, currency="USD"),  # no rate for USD
        _event("e3", 3, "purchase", amount=1_000_000, currency="JPY"),  # 6100 EUR
    ],
    [_event("e3", 3, "purchase", amount=2_000_000, currency="JPY")],  # conflict with a remembered purchase
    [_event("e1", 5, "purchase", amount=1, currency="EUR")],  # conflict, seen from the state in Redis
]


async def _run(redis_url: str, prefix: str, model: Model) -> tuple[list, Stats, CustomerState]:
    settings = Settings(redis_url=redis_url, key_prefix=prefix, partitions=1)
    client = aioredis.Redis.from_url(redis_url)
    published: list = []

    async def publish(messages):
        published.extend(messages)

    store = JourneyStore.for_settings(client, settings)
    processor, stats, offset = Processor(settings, store, publish, model), Stats(), 0
    for n, batch in enumerate(BATCHES):
        if n == len(BATCHES) - 1:  # a new worker: nothing remembered in memory
            stats = _add(stats, processor.stats)
            processor = Processor(settings, store, publish, model)
        messages = []
        for data in batch:
            messages.append(RawMessage("touchpoints", 0, offset, b"c1", json.dumps(data).encode()))
            offset += 1
        await processor.process_batch(messages)
    stats = _add(stats, processor.stats)
    state = (await store.load_states({"c1": 0}))["c1"]
    await client.aclose()
    return published, stats, state


def _add(a: Stats, b: Stats) -> Stats:
    return Stats(**{name: getattr(a, name) + getattr(b, name) for name in Stats().counters()})


def test_refused_events_are_dead_lettered_counted_and_change_nothing(stack, tmp_path: Path):
    published, stats, state = asyncio.run(_run(stack.redis_url, "refusals-test", MODEL))
    topics = Settings()
    dead = [json.loads(m.value) for m in published if m.topic == topics.topic_dead_letter]
    assert [d["source_offset"] for d in dead] == [1, 3, 5, 6]
    kinds = [d["error"].split(":")[0] for d in dead]
    assert kinds == ["conflict", "payload.currency", "conflict", "conflict"], [d["error"] for d in dead]
    assert "USD" in dead[1]["error"] and "EUR" in dead[1]["error"]
    assert all("fingerprint" in d["error"] for d in dead if d["error"].startswith("conflict"))
    # `events`: valid events taken, re-sends included; the refused ones count as dead-lettered instead.
    assert (stats.conflicts, stats.duplicates, stats.dead_lettered, stats.events) == (3, 1, 4, 3)
    # Only the page view and the JPY purchase (converted) are in the state.
    assert state.counts == {"page_view": 1, "purchase": 1}
    assert state.purchases == 1 and state.total_spend == pytest.approx(6100)

    # The offline replay of the same events: the same dead letters (line n+1 is offset n), the same changes.
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(data) + "\n" for batch in BATCHES for data in batch))
    report = run_replay(iter_records(events), MODEL, out_dir=tmp_path / "out")
    offline = [json.loads(line) for line in (tmp_path / "out" / "dead-letters.jsonl").read_text().splitlines()]
    assert [(d["line"] - 1, d["error"]) for d in offline] == [(d["source_offset"], d["error"]) for d in dead]
    live_changes = [json.loads(m.value)["change_id"] for m in published if m.topic == topics.topic_type_changes]
    offline_changes = [
        json.loads(line)["change_id"] for line in (tmp_path / "out" / "changes.jsonl").read_text().splitlines()
    ]
    assert live_changes == offline_changes and live_changes
    assert (report.events, report.duplicates, report.dead_letters) == (stats.events, 1, 4)
