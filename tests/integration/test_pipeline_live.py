"""The whole pipeline on a real Tansu broker and a real redis-server: no mocks."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from journeys import event as touchpoint

from streams.cli import main
from streams.local import sample
from streams.store.history import read as read_history
from streams.store.history import stored_entries

pytestmark = pytest.mark.integration


def test_a_journey_goes_prospect_new_loyal_at_risk_and_back(deploy, store_env, engine):
    """One customer's journey gives exactly its lifecycle changes, its trait, and the actions the playbook allows."""
    d = deploy(**store_env, JOURNEY_CLOCK="wall")
    day0 = (datetime.now(UTC) - timedelta(days=100)).replace(microsecond=0)  # the core keeps milliseconds
    journey = [
        touchpoint("alice", 1, "page_view", day0),
        touchpoint("alice", 2, "purchase", day0 + timedelta(days=1)),
        touchpoint("alice", 3, "purchase", day0 + timedelta(days=6)),
        touchpoint("alice", 4, "purchase", day0 + timedelta(days=11)),
        # quiet for 79 days: past max(30-day floor, 3 x 5-day rhythm), so at risk without any event of hers
    ]
    d.produce(journey)
    d.start_worker()
    d.wait_caught_up()
    due = day0 + timedelta(days=11 + 30)
    before_comeback = [(c["from"], c["to"], c["caused_by"]) for c in d.changes() if c["dimension"] == "lifecycle"]
    assert before_comeback[-1] == ("loyal", "at_risk", f"inactivity@{due.isoformat().replace('+00:00', 'Z')}")

    d.produce([touchpoint("alice", 5, "purchase", day0 + timedelta(days=90))])
    d.wait_caught_up()
    all_changes = d.changes()
    changes = [c for c in all_changes if c["dimension"] == "lifecycle"]
    assert [(c["from"], c["to"], c["caused_by"]) for c in changes] == [
        (None, "prospect", "alice-1"),
        ("prospect", "new", "alice-2"),
        ("new", "loyal", "alice-4"),
        ("loyal", "at_risk", f"inactivity@{due.isoformat().replace('+00:00', 'Z')}"),
        ("at_risk", "loyal", "alice-5"),
    ]
    assert [c["reason"]["rule"] for c in changes] == [
        "lifecycle.prospect",
        "lifecycle.new",
        "lifecycle.loyal",
        "lifecycle.at_risk",
        "lifecycle.loyal",
    ]
    at_risk_evidence = changes[3]["reason"]["evidence"]
    assert at_risk_evidence["days_since_last_purchase"] == 30.0 and at_risk_evidence["purchase_rhythm_days"] == 5.0
    # one page view, then straight to buying with no support: the `efficient` trait, with its reason
    traits = [
        (c["from"], c["to"], c["caused_by"], c["reason"]["rule"]) for c in all_changes if c["dimension"] == "trait"
    ]
    assert traits == [(None, "efficient", "alice-2", "trait.efficient")]
    actions = d.actions()
    # the second loyalty invite falls within its 90-day cooldown: suppressed, not sent
    assert [a["action"] for a in actions] == [
        "lead_nurture_sequence",
        "welcome_onboarding",
        "concise_options_summary",
        "loyalty_programme_invite",
        "win_back_offer",
    ]
    by_id = {c["change_id"]: c for c in all_changes}
    assert [by_id[a["triggered_by"]]["to"] for a in actions] == ["prospect", "new", "efficient", "loyal", "at_risk"]
    state = d.states()["alice"]
    assert state["lifecycle"] == "loyal"
    assert state["actions_suppressed"] == 1
    assert state["suppressed_log"][-1][1] == "loyalty_programme_invite"
    assert state["suppressed_log"][-1][2].startswith("cooldown")
    # the history `journey explain` reads holds the changes, newest first
    history = [
        read_history(h, "alice") for h in stored_entries(d.redis, d.keys.history(d.partition_of("alice"), "alice"))
    ]
    assert [h["change_id"] for h in history] == [c["change_id"] for c in reversed(all_changes)][
        : d.settings.history_length
    ]

    # `journey explain alice` tells it back: her types, the rules that hold, her changes, sent and suppressed
    env = {**d.env, "COLUMNS": "240"}
    result = CliRunner().invoke(main, ["explain", "alice"], env=env)
    assert result.exit_code == 0, result.output
    text = result.output
    assert "lifecycle loyal" in text and "efficient" in text
    assert "lifecycle.loyal" in text and "purchases=4" in text
    assert "at_risk → loyal" in text and "alice-5" in text
    assert "loyalty_programme_invite (suppressed)" in text and "cooldown" in text
    missing = CliRunner().invoke(main, ["explain", "nobody"], env=env)
    assert missing.exit_code == 1 and "no customer 'nobody'" in missing.output


def test_every_kind_of_bad_input_is_dead_lettered_and_the_rest_processed(deploy, store_env, engine):
    """Bad messages go to the dead-letter topic with raw bytes, error and offset; good ones around them are applied."""
    d = deploy(**store_env)
    at = datetime(2026, 3, 1, tzinfo=UTC)
    bad = sample.bad_messages()
    before = d.produce([touchpoint("bob", 1, "page_view", at)])
    bad_offsets = d.produce_raw(bad)
    after = d.produce([touchpoint("carol", 1, "page_view", at)])
    d.start_worker()
    d.wait_caught_up()

    letters = d.dead_letters()
    assert len(letters) == len(bad)
    by_value = {base64.b64decode(dl["raw_value_b64"]): dl for dl in letters}
    for (key, value), offset in zip(bad, bad_offsets, strict=False):
        dl = by_value[value]
        assert dl["source_offset"] == offset
        assert dl["source_topic"] == d.settings.topic_touchpoints
        assert dl["error"]
        assert (base64.b64decode(dl["raw_key_b64"]) if dl["raw_key_b64"] else None) == (key or None)
    errors = " | ".join(dl["error"] for dl in letters)
    for expected in ("JSON", "channel", "touchpoint", "contradicts", "occurred_at", "timezone", "exceeds", "key"):
        assert expected in errors
    customers = {c["customer_id"] for c in d.changes()}
    assert customers == {"bob", "carol"}
    assert before and after


def test_a_new_group_over_the_same_redis_resumes_where_redis_says_and_emits_nothing_twice(deploy, engine):
    """A second worker group over the same Redis state has no committed offsets in Kafka: it starts where
    Redis's marks say, so nothing is read, applied or emitted again."""
    d = deploy(JOURNEY_CLOCK="event")
    events = list(sample.generate(40, seed=3))
    d.produce(events)
    d.start_worker()
    d.wait_caught_up()
    states, changes = d.states(), d.changes()
    again = d.start_worker(JOURNEY_CONSUMER_GROUP=d.settings.consumer_group + "-again")
    ends = d.partition_ends()
    expected = [f"partition {p}: offset {end - 1} applied: reading from offset {end}" for p, end in ends.items()]
    deadline = time.monotonic() + 60
    while not all(line in d.worker_log(again) for line in expected):
        assert time.monotonic() < deadline, f"the new group did not resume from Redis's marks:\n{d.worker_log(again)}"
        time.sleep(0.1)
    d.wait_stat(again, "redis_round_trips", 1)  # its stats are published: the counters below are real
    d.wait_caught_up()
    assert (d.stat(again, "events"), d.stat(again, "redelivered")) == (0, 0)
    assert d.states() == states
    assert len(d.changes()) == len(changes)


def test_a_worker_killed_mid_stream_loses_nothing_and_duplicates_no_id(deploy, store_env, engine):
    """kill -9 in the middle of a stream, restart: the final state equals an uninterrupted run's,
    every change and action was published, and none under two different ids."""
    events = list(sample.generate(1500, seed=11))
    crashed = deploy(**store_env, JOURNEY_CLOCK="event", JOURNEY_BATCH_SIZE="200")
    crashed.produce(events)
    victim = crashed.start_worker()
    crashed.wait_stat(victim, "events", len(events) // 4, timeout=90)
    victim.kill()
    victim.wait()
    assert not crashed.caught_up(), "the worker finished before it could be killed: use more events"
    crashed.start_worker()
    crashed.wait_caught_up(timeout=120)

    reference = deploy(input_of=crashed, engine="aiokafka", **store_env, JOURNEY_CLOCK="event")
    reference.start_worker()
    reference.wait_caught_up(timeout=120)

    assert crashed.states() == reference.states()
    for read in ("changes", "actions"):
        got, want = getattr(crashed, read)(), getattr(reference, read)()
        id_field = "change_id" if read == "changes" else "action_id"
        ids_by_meaning: dict[tuple, set] = {}
        for message in got:
            meaning = tuple(sorted((k, str(v)) for k, v in message.items() if k != id_field))
            ids_by_meaning.setdefault(meaning, set()).add(message[id_field])
        assert all(len(ids) == 1 for ids in ids_by_meaning.values()), f"a {read[:-1]} published under two ids"
        assert {m[id_field] for m in got} == {m[id_field] for m in want}
        assert len(want) == len({m[id_field] for m in want})
