"""Erasure in the offline replay (pure): the customer is forgotten at the request's point of the file,
and a later event of the same id starts a new profile."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from schemas import TouchpointEvent
from streams.core.model import load_model
from streams.replay.engine import OfflineReplay
from streams.replay.run import run_replay
from streams.replay.sources import iter_records

DAY0 = datetime(2026, 3, 2, 10, tzinfo=UTC)


def ev(n: int, kind: str, day: int, **extra) -> TouchpointEvent:
    stage = {"page_view": "pre_purchase", "purchase": "purchase"}.get(kind, "post_purchase")
    data = {
        "event_id": f"ana-{n}",
        "customer_id": "ana",
        "occurred_at": (DAY0 + timedelta(days=day)).isoformat(),
        "stage": stage,
        "touchpoint": kind,
        "channel": "web",
        **extra,
    }
    if kind == "purchase":
        data["payload"] = {"kind": "order", "amount": 50.0, "currency": "EUR"}
    if kind == "erasure_request":
        data["payload"] = {"kind": "erasure", "requested_by": "privacy-desk"}
    return TouchpointEvent.model_validate(data)


def test_replay_forgets_at_the_request_and_starts_a_new_profile_after():
    replay = OfflineReplay(load_model())
    replay.apply(ev(1, "page_view", 0))
    replay.apply(ev(2, "purchase", 1))
    assert replay.states["ana"].lifecycle != "prospect"
    step = replay.apply(ev(3, "erasure_request", 2))
    assert "ana" not in replay.states
    assert step.erased is not None and step.erased.customer_id == "ana"
    assert step.erased.requested_by == "privacy-desk" and not step.changes and not step.actions
    assert replay.counts.erasures == 1
    again = replay.apply(ev(3, "erasure_request", 2))  # re-sent: nothing held, nothing emitted
    assert again.erased is None and replay.counts.erasures == 1
    later = replay.apply(ev(4, "page_view", 3))
    state = replay.states["ana"]
    assert state.first_seen == (DAY0 + timedelta(days=3)).timestamp()
    assert state.lifecycle == "prospect"
    assert [c.to for c in later.changes if c.dimension == "lifecycle"] == ["prospect"]
    assert [c.from_ for c in later.changes if c.dimension == "lifecycle"] == [None]


def test_replay_run_writes_the_audit_record_and_counts_the_erasure(tmp_path):
    rows = [e.model_dump(mode="json", by_alias=True) for e in (ev(1, "page_view", 0), ev(3, "erasure_request", 2))]
    rows.append(ev(3, "erasure_request", 2).model_dump(mode="json", by_alias=True))  # re-sent: not counted again
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    report = run_replay(iter_records(source), load_model(), out_dir=out)
    assert report.erasures == 1 and report.customers == 0
    [audit] = [json.loads(line) for line in (out / "erasures.jsonl").read_text().splitlines()]
    assert audit["customer_id"] == "ana" and audit["requested_by"] == "privacy-desk"
    assert set(audit) == {"schema_version", "erasure_id", "customer_id", "requested_by", "requested_at"}
    assert json.loads((out / "summary.json").read_text())["erasures"] == 1
