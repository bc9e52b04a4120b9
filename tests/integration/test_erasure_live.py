"""Erasure on a real broker and a real redis-server: every Redis key of the customer is gone, the
tombstones and one audit record are on the real topics, a re-sent request emits nothing again, and an
event after the erasure starts a new profile."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from journeys import event

pytestmark = pytest.mark.integration

DAY0 = datetime(2026, 3, 2, 10, tzinfo=UTC)


def erasure(customer: str, n: int, at: datetime, by: str = "privacy-desk") -> dict:
    return {
        "event_id": f"{customer}-{n}",
        "customer_id": customer,
        "occurred_at": at.isoformat(),
        "stage": "post_purchase",
        "touchpoint": "erasure_request",
        "channel": "api",
        "payload": {"kind": "erasure", "requested_by": by},
    }


def test_erasure_deletes_every_key_and_publishes_tombstones_and_one_audit(deploy, engine):
    d = deploy(JOURNEY_CLOCK="event")
    s = d.settings
    history = [
        event("ana", 1, "page_view", DAY0),
        event("ana", 2, "purchase", DAY0 + timedelta(days=1)),
        event("bob", 1, "page_view", DAY0),
    ]
    d.produce([*history, erasure("ana", 3, DAY0 + timedelta(days=2))])
    worker = d.start_worker()
    d.wait_caught_up(timeout=90)
    d.wait_stat(worker, "erasures", 1, timeout=30)
    d.produce([erasure("ana", 3, DAY0 + timedelta(days=2))])  # re-sent by upstream: nothing left to forget
    d.wait_caught_up(timeout=60)

    left = [k for k in d.redis.scan_iter(match=f"{s.key_prefix}:*", count=1000) if b"ana" in k]
    assert left == [], f"keys of the erased customer remain: {left}"
    assert d.redis.zscore(d.keys.due(0), "ana") is None and d.redis.zscore(d.keys.due(1), "ana") is None
    assert "bob" in d.states()

    for topic in (s.topic_type_changes, s.topic_nurture_actions, s.topic_holdouts):
        records = [(k, v) for k, v in d.records(topic) if k == b"ana"]
        assert records and records[-1] == (b"ana", None), f"no tombstone last for ana on {topic}"
        assert sum(v is None for _, v in records) == 1, f"a tombstone was published twice on {topic}"
    audits = d.records(s.topic_erasures)
    assert len(audits) == 1
    key, value = audits[0]
    assert key == b"ana" and value is not None
    record = json.loads(value)
    assert record == {
        "schema_version": 1,
        "erasure_id": "ana-3",
        "customer_id": "ana",
        "requested_by": "privacy-desk",
        "requested_at": (DAY0 + timedelta(days=2)).isoformat().replace("+00:00", "Z"),
    }
    assert d.stat(worker, "erasures") == 1

    # an event after the erasure starts a new profile: a prospect again, in the lead-nurture sequence again
    welcomes = sum(a["action"] == "lead_nurture_sequence" for a in d.actions() if a["customer_id"] == "ana")
    d.produce([event("ana", 4, "page_view", DAY0 + timedelta(days=3))])
    d.wait_caught_up(timeout=60)
    state = d.states()["ana"]
    assert state["first_seen"] == (DAY0 + timedelta(days=3)).timestamp()
    assert state["lifecycle"] == "prospect"
    changes = [c for c in d.changes() if c["customer_id"] == "ana" and c["dimension"] == "lifecycle"]
    assert changes[-1]["from"] is None and changes[-1]["to"] == "prospect"
    after = sum(a["action"] == "lead_nurture_sequence" for a in d.actions() if a["customer_id"] == "ana")
    assert after == welcomes + 1, [a for a in d.actions() if a["customer_id"] == "ana"]


def test_journey_forget_end_to_end(deploy, tmp_path):
    from click.testing import CliRunner

    from streams.cli import main as journey

    d = deploy()
    d.produce(
        [event("cai", 1, "page_view", DAY0), event("dan", 1, "page_view", DAY0), event("eve", 1, "page_view", DAY0)]
    )
    worker = d.start_worker()
    d.wait_caught_up(timeout=90)
    ids = tmp_path / "ids.txt"
    ids.write_text("dan\n\n")
    args = ["forget", "cai", "--file", str(ids), "--requested-by", "ticket-9", "--wait", "--timeout", "60"]
    run = CliRunner().invoke(journey, args, env=d.env)
    assert run.exit_code == 0, run.output
    assert "2 erasure request(s) sent" in run.output and "applied: 2" in run.output
    # --wait returned only once the commits passed the requests: the keys are gone already
    assert set(d.states()) == {"eve"}
    d.wait_stat(worker, "erasures", 2, timeout=60)
    d.wait_caught_up(timeout=60)
    assert set(d.states()) == {"eve"}
    audits = {json.loads(v)["customer_id"]: json.loads(v) for _, v in d.records(d.settings.topic_erasures) if v}
    assert set(audits) == {"cai", "dan"} and {a["requested_by"] for a in audits.values()} == {"ticket-9"}
    bad = CliRunner().invoke(journey, ["forget", "bad\nid"], env=d.env)
    assert bad.exit_code != 0 and "not a valid erasure request" in bad.output

    # no worker to apply it: --wait gives up after its timeout, saying so, and the customer is still held
    d.stop_worker(worker)
    late = CliRunner().invoke(journey, ["forget", "eve", "--wait", "--timeout", "2"], env=d.env)
    assert late.exit_code == 1, late.output
    assert "not applied within 2 s" in late.output
    assert set(d.states()) == {"eve"}


def test_erasure_of_a_quarantined_customer_deletes_the_quarantined_copy(deploy):
    d = deploy()
    p = d.partition_of("mal")
    poisoned = json.dumps({"id": "mal", "fs": DAY0.timestamp(), "ls": DAY0.timestamp(), "p": 2, "sp": None}).encode()
    d.redis.set(d.keys.state(p, "mal"), poisoned)
    d.produce([event("mal", 1, "page_view", DAY0)])
    worker = d.start_worker()
    d.wait_caught_up(timeout=90)
    assert d.redis.exists(d.keys.quarantine(p, "mal"))
    d.produce([erasure("mal", 2, DAY0 + timedelta(hours=1)), event("mal", 3, "page_view", DAY0 + timedelta(hours=2))])
    d.wait_stat(worker, "erasures", 1, timeout=60)
    d.wait_caught_up(timeout=60)
    assert not d.redis.exists(d.keys.quarantine(p, "mal"))
    state = d.states()["mal"]  # the event after the erasure: a new, readable profile
    assert state["first_seen"] == (DAY0 + timedelta(hours=2)).timestamp()
    assert [v for k, v in d.records(d.settings.topic_erasures)] and len(d.records(d.settings.topic_erasures)) == 1
