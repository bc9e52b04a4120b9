"""Replay into Kafka on a real Tansu broker and a real redis-server: the live worker (event clock,
advanced to the replay's end with `journey advance-clock`) gives exactly what the offline replay gives,
quiet hours, consent events and a holdout group included."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from schemas import TouchpointEvent
from streams.cli import main as journey
from streams.core.churn.bgnbd import Params
from streams.core.churn.fit import Fit
from streams.core.churn.modelfile import load_churn_model, to_document, write_model
from streams.core.model import load_model
from streams.core.playbook.playbook import DEFAULT_PLAYBOOK_FILE
from streams.core.rules.compiled import CHURN_RULES
from streams.imports.records import SourceRecord
from streams.local import sample
from streams.replay.engine import Emitted, OfflineReplay
from streams.replay.to_kafka import replay_to_kafka

pytestmark = pytest.mark.integration


def write_jsonl(path: Path, events: list[dict], bad_lines: dict[int, str] | None = None) -> None:
    """The events one per line; `bad_lines` puts unparsable lines before the given event indexes."""
    bad_lines = bad_lines or {}
    with path.open("w") as out:
        for i, event in enumerate(events):
            if i in bad_lines:
                out.write(bad_lines[i] + "\n")
            out.write(json.dumps(event, separators=(",", ":")) + "\n")


def read_jsonl(path: Path) -> list[SourceRecord]:
    records = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        try:
            records.append(SourceRecord(str(path), n, event=TouchpointEvent.model_validate_json(line), raw=line))
        except ValidationError as exc:
            records.append(SourceRecord(str(path), n, error=str(exc), raw=line))
    return records


def as_dicts(emitted: Emitted) -> tuple[dict[str, dict], dict[str, dict]]:
    """Changes and actions by id, as the JSON the worker publishes (TypeChange's `from_` is "from")."""
    changes = [json.loads(c.model_dump_json(by_alias=True)) for c in emitted.changes]
    actions = [json.loads(a.model_dump_json(by_alias=True)) for a in emitted.actions]
    by_change, by_action = {c["change_id"]: c for c in changes}, {a["action_id"]: a for a in actions}
    assert len(by_change) == len(changes) and len(by_action) == len(actions), "the offline replay repeated an id"
    return by_change, by_action


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


#: Quiet hours in the replayed playbook, and zones of the customers' own on some of their events.
QUIET = 'quiet_hours: {from: "21:00", to: "08:00"}\n'
ZONES = ("Asia/Tokyo", "America/Los_Angeles", None, None)
#: A holdout group in the replayed playbook: a fifth of the customers are held out of the welcome.
WELCOME = "welcome_onboarding:          {channel: email, priority: high,   kind: marketing, cooldown_days: 30,"


def with_consent_events(events: list[dict]) -> list[dict]:
    """The events with consent events inserted after some customers' first event, at its time: customers
    whose id ends in 3 unsubscribe from e-mail, in 6 revoke ads audiences, in 9 grant and then revoke e-mail."""
    out, seen = [], set()
    for message in events:
        out.append(message)
        customer = message["customer_id"]
        if customer in seen:
            continue
        seen.add(customer)
        said = {"3": [("unsubscribe", "email")], "6": [("consent_revoked", "ads")]}.get(customer[-1], [])
        if customer[-1] == "9":
            said = [("consent_granted", "email"), ("consent_revoked", "email")]
        for n, (kind, channel) in enumerate(said):
            out.append(
                {
                    **message,
                    "event_id": f"{customer}-consent-{n}",
                    "touchpoint": kind,
                    "channel": channel,
                    "payload": {"kind": "consent", "channel": channel, "source": "preference_centre"},
                }
            )
    return out


def test_live_replay_with_the_clock_advanced_gives_what_the_offline_replay_gives(deploy, tmp_path, engine):
    events = with_consent_events(list(sample.generate(300, seed=5)))
    # Two events re-sent as they were (same event_id) a little later in the stream.
    for original in (1500, 700):
        events.insert(original + 4, dict(events[original]))
    # Two customers ask to be forgotten mid-stream (their later events, if any, start a new profile).
    for at in (1800, 900):
        before = events[at - 1]
        events.insert(
            at,
            {
                "event_id": f"erase-{before['customer_id']}",
                "customer_id": before["customer_id"],
                "occurred_at": before["occurred_at"],
                "stage": "post_purchase",
                "touchpoint": "erasure_request",
                "channel": "api",
                "payload": {"kind": "erasure", "requested_by": "privacy-desk"},
            },
        )
    # A quarter of the customers name a zone of Tokyo, a quarter of Los Angeles; the rest are in their
    # country's zone (or UTC): the playbook's quiet hours defer their night's marketing.
    for message in events:
        zone = ZONES[int(message["customer_id"][-1]) % len(ZONES)]
        if zone is not None:
            message["timezone"] = zone
    playbook = tmp_path / "quiet-playbook.yaml"
    text = DEFAULT_PLAYBOOK_FILE.read_text().replace("\nsuppress:", f"\n{QUIET}\nsuppress:", 1)
    assert WELCOME in text
    playbook.write_text(text.replace(WELCOME, WELCOME + " holdout: 0.2,", 1))
    path = tmp_path / "journeys.jsonl"
    write_jsonl(path, events, bad_lines={300: "{not json"})
    records = read_jsonl(path)
    assert sum(r.event is None for r in records) == 1

    # (a) offline, in file order, then on to a day after the last event
    offline = OfflineReplay(load_model(playbook_file=playbook))
    emitted = Emitted()
    want_erasures = []
    for record in records:
        if record.event is not None:
            step = offline.apply(record.event)
            if step.erased is not None:
                want_erasures.append(json.loads(step.erased.model_dump_json()))
            emitted.changes += step.changes
            emitted.actions += step.actions
            emitted.held_out += step.held_out
    until = max(r.event.occurred_ts for r in records if r.event is not None) + timedelta(days=1).total_seconds()
    at_end = offline.advance_to(until)
    emitted.changes += at_end.changes
    emitted.actions += at_end.actions
    emitted.held_out += at_end.held_out
    assert offline.counts.duplicates == 2
    want_changes, want_actions = as_dicts(emitted)
    assert any(c["caused_by"].startswith("inactivity@") for c in want_changes.values())
    deferred = [a for a in want_actions.values() if "deferred_from" in a["params"]]
    assert len(deferred) > 100 and sum(offline.counts.deferred.values()) >= len(deferred)
    assert any(reason.startswith("superseded:") for _, reason in offline.counts.suppressed_why)
    assert sum(n for (_, reason), n in offline.counts.suppressed_why.items() if reason.startswith("no consent:")) > 10
    want_held = {a.action_id: json.loads(a.model_dump_json(by_alias=True)) for a in emitted.held_out}
    assert len(want_held) == len(emitted.held_out) > 5 and not set(want_held) & set(want_actions)

    # (b) live: into Kafka, the worker on the event clock, then the clock advanced to the same instant
    d = deploy(JOURNEY_CLOCK="event", JOURNEY_PLAYBOOK_FILE=str(playbook))
    result = asyncio.run(replay_to_kafka(records, d.settings))
    assert (result.produced, result.rejected) == (len(events), 1)
    assert sum(result.end_offsets.values()) == len(events)  # a fresh topic: offsets start at 0
    d.input_ends.update(result.end_offsets)
    worker = d.start_worker()
    d.wait_caught_up(timeout=120)
    before_advance = {c["change_id"] for c in d.changes()}

    run = CliRunner().invoke(journey, ["advance-clock", "--until", iso(until)], env=d.env)
    assert run.exit_code == 0, run.output
    assert run.output.count("clock ") == d.settings.partitions
    marks = [d.redis.hget(d.keys.mark(p), "clock") for p in range(d.settings.partitions)]
    assert [float(m) for m in marks] == [until] * d.settings.partitions
    d.wait_caught_up(timeout=60)

    got_changes, got_actions = d.changes(), d.actions()
    assert len({c["change_id"] for c in got_changes}) == len(got_changes), "a change was published twice"
    assert len({a["action_id"] for a in got_actions}) == len(got_actions), "an action was published twice"
    live_changes = {c["change_id"]: c for c in got_changes}
    live_actions = {a["action_id"]: a for a in got_actions}
    assert before_advance < set(live_changes), "advancing the clock fired nothing"

    assert set(live_changes) == set(want_changes)
    assert set(live_actions) == set(want_actions)
    for change_id, change in want_changes.items():
        assert live_changes[change_id] == change
    for action_id, action in want_actions.items():
        assert live_actions[action_id] == action
    got_held = d.read(d.settings.topic_holdouts)
    assert len({a["action_id"] for a in got_held}) == len(got_held), "a held-out action was published twice"
    assert {a["action_id"]: a for a in got_held} == want_held
    assert d.wait_stat(worker, "duplicates", 2) == 2
    assert len(want_erasures) == 2 == offline.counts.erasures
    got_erasures = [json.loads(v) for _, v in d.records(d.settings.topic_erasures) if v is not None]
    assert sorted(got_erasures, key=lambda e: e["erasure_id"]) == sorted(want_erasures, key=lambda e: e["erasure_id"])
    assert set(d.states()) == set(offline.states)
    total = sum(offline.counts.deferred.values())
    assert d.wait_stat(worker, "deferred", total) == total


def test_live_replay_with_a_churn_model_gives_what_the_offline_replay_gives(deploy, tmp_path, engine):
    """churn.yaml with a model file: at_risk decided by churn_risk crossing its threshold at a due time computed
    from the model, live (worker on the event clock, then the clock advanced) exactly as offline."""
    model_file = tmp_path / "churn-model.yaml"
    fit = Fit(Params(0.243, 30.9, 0.793, 2.426), -100.0, True, 150, 10, "ok")
    write_model(model_file, to_document(fit, "orders.jsonl", 150, datetime(2026, 1, 1, tzinfo=UTC)))
    events = list(sample.generate(150, seed=7))
    path = tmp_path / "journeys.jsonl"
    write_jsonl(path, events)
    records = read_jsonl(path)

    offline = OfflineReplay(load_model(CHURN_RULES, churn=load_churn_model(model_file)))
    emitted = Emitted()
    for record in records:
        assert record.event is not None
        step = offline.apply(record.event)
        emitted.changes += step.changes
        emitted.actions += step.actions
    until = max(r.event.occurred_ts for r in records if r.event is not None) + timedelta(days=120).total_seconds()
    at_end = offline.advance_to(until)
    emitted.changes += at_end.changes
    emitted.actions += at_end.actions
    want_changes, want_actions = as_dicts(emitted)
    by_score = [
        c
        for c in want_changes.values()
        if c["to"] == "at_risk" and c["caused_by"].startswith("inactivity@") and c["reason"]["evidence"]["churn_risk"]
    ]
    assert len(by_score) > 5, "too few customers turned at_risk by the score for the comparison to mean much"
    assert all(c["reason"]["evidence"]["churn_model"] == "churn-model.yaml@2026-01-01T00:00:00Z" for c in by_score)
    # and some after the 30-day floor: at the instant computed from the model
    assert any(c["reason"]["evidence"]["days_since_last_purchase"] > 30.001 for c in by_score)

    d = deploy(JOURNEY_CLOCK="event", JOURNEY_RULES_FILE=str(CHURN_RULES), JOURNEY_CHURN_MODEL_FILE=str(model_file))
    result = asyncio.run(replay_to_kafka(records, d.settings))
    assert (result.produced, result.rejected) == (len(events), 0)
    d.input_ends.update(result.end_offsets)
    worker = d.start_worker()
    d.wait_caught_up(timeout=120)
    run = CliRunner().invoke(journey, ["advance-clock", "--until", iso(until)], env=d.env)
    assert run.exit_code == 0, run.output
    d.wait_caught_up(timeout=60)

    got_changes, got_actions = d.changes(), d.actions()
    assert len({c["change_id"] for c in got_changes}) == len(got_changes), "a change was published twice"
    live_changes = {c["change_id"]: c for c in got_changes}
    live_actions = {a["action_id"]: a for a in got_actions}
    assert set(live_changes) == set(want_changes)
    assert set(live_actions) == set(want_actions)
    for change_id, change in want_changes.items():
        assert live_changes[change_id] == change
    for action_id, action in want_actions.items():
        assert live_actions[action_id] == action
    assert "churn model churn-model.yaml@2026-01-01T00:00:00Z" in d.worker_log(worker)  # loaded at start


def test_a_paced_replay_takes_the_event_time_span_over_the_speedup_in_per_customer_order(deploy, tmp_path):
    events = list(sample.generate(12, seed=9))[:40]
    path = tmp_path / "paced.jsonl"
    write_jsonl(path, events)
    records = read_jsonl(path)
    times = [r.event.occurred_ts for r in records]
    span = max(times) - min(times)
    assert span > 0
    speedup = span / 1.5  # the whole span in about 1.5 s

    d = deploy()
    result = asyncio.run(replay_to_kafka(records, d.settings, speedup=speedup))
    assert (result.produced, result.rejected) == (len(events), 0)
    assert result.elapsed_s >= span / speedup * 0.9
    assert result.elapsed_s < span / speedup + 10

    produced = d.read(d.settings.topic_touchpoints)  # offset order within each partition
    assert len(produced) == len(events)
    sent, wanted = defaultdict(list), defaultdict(list)
    for message in produced:
        sent[message["customer_id"]].append(message["event_id"])
    for event in events:
        wanted[event["customer_id"]].append(event["event_id"])
    assert sent == wanted
    assert len(wanted) > 1 and any(len(ids) > 1 for ids in wanted.values())


def test_a_batch_that_read_the_mark_before_an_advance_does_not_move_the_clock_back(deploy):
    """commit.lua stores max(stored clock, the batch's clock): an advance is never undone by a batch in flight."""
    import redis.asyncio as aioredis

    from streams.replay.clock import advance_event_clock
    from streams.store import JourneyStore, PartitionCommit

    d = deploy(JOURNEY_CLOCK="event")
    until = datetime(2027, 1, 1, tzinfo=UTC).timestamp()
    earlier = datetime(2026, 3, 1, tzinfo=UTC).timestamp()

    async def scenario():
        client = aioredis.Redis.from_url(d.settings.redis_dsn)
        store = JourneyStore(client, d.settings.key_prefix, d.settings.topic_touchpoints)
        try:
            marks, _ = await store.load([0], {})  # the batch reads the mark (no offset, no clock yet)
            clocks = await advance_event_clock(d.settings, until)  # the clock is advanced meanwhile
            assert clocks == {p: until for p in range(d.settings.partitions)}
            results = await store.commit([PartitionCommit(0, marks[0].offset, 0, max(marks[0].clock, earlier))])
            assert results[0].applied
            after, _ = await store.load([0, 1], {})
            assert (after[0].offset, after[0].clock) == (0, until)
            assert (after[1].offset, after[1].clock) == (None, until)
            # a batch with a later clock still moves it on, and advancing to an earlier time changes nothing
            await store.commit([PartitionCommit(0, 0, 1, until + 5)])
            assert (await advance_event_clock(d.settings, until - 86_400))[0] == until + 5
        finally:
            await client.aclose()

    asyncio.run(scenario())
