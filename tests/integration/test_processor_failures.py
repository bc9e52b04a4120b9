"""The processor against a real Redis when the core itself fails on an event (a bug, not bad input).

The processor changes a customer's state in place, for every event of theirs in a batch (a copy
per event was a tenth of the worker's time), so an event that fails half-way must not leave its
half in the state: the event is dead-lettered, the state is rebuilt (read again, the batch's
earlier events of the customer applied again), and their later events apply to that. Kafka plays
no part here: the processor hands its outputs to a `publish` callable, which this test keeps.
"""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from schemas import TouchpointEvent
from streams.core import CustomerState, ids
from streams.core.intake import RawMessage
from streams.core.model import Model, load_model
from streams.core.playbook.playbook import Playbook
from streams.live.processor import Processor
from streams.settings import Settings
from streams.store import JourneyStore

pytestmark = pytest.mark.integration

START = datetime(2026, 3, 1, 9, tzinfo=UTC)


class _FailsOnPoison(Playbook):
    """The shipped playbook, raising on the changes of one event: after its facts are folded in."""

    def decide(self, state, change, at, *outcomes):
        if change.caused_by == "poison":
            raise RuntimeError("a bug in the playbook")
        super().decide(state, change, at, *outcomes)


def _event(event_id: str, day: int, kind: str, **extra) -> dict:
    stage = {"page_view": "pre_purchase", "purchase": "purchase"}[kind]
    return {
        "event_id": event_id,
        "customer_id": "c1",
        "stage": stage,
        "touchpoint": kind,
        "channel": "web",
        "occurred_at": (START + timedelta(days=day)).isoformat(),
        **extra,
    }


def _message(offset: int, event: dict) -> RawMessage:
    return RawMessage("touchpoints", 0, offset, event["customer_id"].encode(), json.dumps(event).encode())


ORDER = {"kind": "order", "amount": 40, "currency": "EUR"}


async def _run(redis_url: str, prefix: str, batches: list[list[RawMessage]]) -> tuple[list, CustomerState]:
    """Apply the batches in turn with the failing playbook; what was published, and c1's stored state."""
    shipped = load_model()
    model = Model(shipped.rules, _FailsOnPoison(shipped.playbook.spec), shipped.dedupe_window)
    settings = Settings(redis_url=redis_url, key_prefix=prefix, partitions=1)
    client = aioredis.Redis.from_url(redis_url)
    published = []

    async def publish(messages):
        published.extend(messages)

    store = JourneyStore.for_settings(client, settings)
    processor = Processor(settings, store, publish, model)
    for batch in batches:
        await processor.process_batch(batch)
    states = await store.load_states({"c1": 0})
    await client.aclose()
    return published, states["c1"]


def test_an_event_the_core_fails_on_leaves_no_trace_in_the_state(stack):
    published, state = asyncio.run(
        _run(
            stack.redis_url,
            "poison-test",
            [
                [_message(0, _event("first", 0, "page_view"))],
                # The poison event is the customer's first of this batch: it is applied to the state in place.
                [
                    _message(1, _event("poison", 1, "purchase", payload=ORDER)),
                    _message(2, _event("after", 2, "page_view")),
                ],
            ],
        )
    )
    dead = [json.loads(m.value) for m in published if m.topic == Settings().topic_dead_letter]
    assert len(dead) == 1 and "a bug in the playbook" in dead[0]["error"] and dead[0]["source_offset"] == 1
    poison = TouchpointEvent.model_validate(json.loads(base64.b64decode(dead[0]["raw_value_b64"])))
    assert poison.event_id == "poison"
    # The purchase's facts were folded in before the failure; none of them may remain.
    assert state.purchases == 0 and state.counts == {"page_view": 2}
    assert state.lifecycle == "prospect" and state.total_spend == 0
    # Nothing was published for the poison event, and the later event was applied normally.
    changes = [json.loads(m.value) for m in published if m.topic == Settings().topic_type_changes]
    assert all(c["caused_by"] != "poison" for c in changes)
    assert state.last_seen == (START + timedelta(days=2)).timestamp()


def test_a_failure_keeps_the_batchs_earlier_events_of_the_customer(stack):
    published, state = asyncio.run(
        _run(
            stack.redis_url,
            "poison-test-2",
            [
                [_message(0, _event("first", 0, "page_view"))],
                # The customer's events of one batch all change one state in place; the poison is the second.
                [
                    _message(1, _event("second", 1, "page_view")),
                    _message(2, _event("poison", 2, "purchase", payload=ORDER)),
                    _message(3, _event("after", 3, "page_view")),
                ],
            ],
        )
    )
    dead = [json.loads(m.value) for m in published if m.topic == Settings().topic_dead_letter]
    assert [d["source_offset"] for d in dead] == [2]
    # The batch's earlier event stays (once), the poison's purchase is gone, the later event is applied.
    assert state.counts == {"page_view": 3}
    assert state.purchases == 0 and state.total_spend == 0 and state.lifecycle == "prospect"
    assert state.last_seen == (START + timedelta(days=3)).timestamp()
    assert len(state.recent_events) == 3 * ids.FINGERPRINT_CHARS, "each applied event's fingerprint once"
