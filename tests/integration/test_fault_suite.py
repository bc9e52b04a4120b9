"""The fault suite: a stream of many customers' events applied through worker kills and Redis failures,
on the real Tansu broker and a real redis-server with AOF (`appendfsync everysec`), then compared
with an offline replay of the same events.

While the worker applies the stream, in one seeded order with seeded moments: the worker is killed
(`kill -9`) and restarted again and again, Redis is shut down gracefully once (`SHUTDOWN`, then
started again from its AOF), and Redis is restored once from a snapshot taken earlier (`BGSAVE`,
later `kill -9` and a start from that older RDB): what a failover to a lagging replica or a restore
from backup does. At the end the event clock is advanced past the last event, and the published
change and action ids and the states must be the offline replay's: an id published twice is fine
(at least once), a missing id or one the replay does not give is a failure.

The counts (kills, restarts, how far the restore set Redis back, lost, extra and repeated ids) are
printed, and carried in the assertion messages.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from schemas import TouchpointEvent
from streams.cli import main as journey
from streams.core.model import load_model
from streams.imports.records import SourceRecord
from streams.local import sample
from streams.replay.engine import OfflineReplay
from streams.replay.run import run_replay
from streams.store import Keys

pytestmark = [pytest.mark.integration, pytest.mark.timeout(290)]

SEED = 11_2026
#: The stream's event times begin here: a year that has passed, so no event lies in the future.
START = datetime(2025, 1, 1, tzinfo=UTC)
CUSTOMERS = 1200
KILLS = 12
#: The faults in the order they happen; a chunk of the stream is produced before each.
PLAN = ["kill"] * 3 + ["restart_redis"] + ["kill"] * 2 + ["snapshot"] + ["kill"] * 3 + ["restore"] + ["kill"] * 4
#: Longest wait for any one thing (a worker to start applying, Redis to come back, catching up).
WAIT_S = 60.0


def wait_for(condition: Callable[[], object], what: str, timeout: float = WAIT_S) -> None:
    """Poll `condition` until it holds; Redis being away for a moment counts as not yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def applied_offsets(d) -> dict[int, int]:
    """Each partition's applied offset in Redis (-1: none)."""
    prefix, topic = d.settings.key_prefix, d.settings.topic_touchpoints
    pipe = d.redis.pipeline(transaction=False)
    for p in range(d.settings.partitions):
        pipe.hget(Keys(prefix, topic).mark(p), "offset")
    return {p: -1 if raw is None else int(raw) for p, raw in enumerate(pipe.execute())}


def caught_up(d) -> bool:
    try:
        return d.caught_up()
    except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
        return False


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def offline(events: list[dict], until: float, out_dir: Path) -> tuple[list[dict], list[dict], dict[str, dict]]:
    """What an offline replay of the events gives: its changes and actions (`run_replay`), and the states
    its engine ends with."""
    records = [
        SourceRecord("stream", n, event=TouchpointEvent.model_validate(e), raw=json.dumps(e))
        for n, e in enumerate(events, start=1)
    ]
    model = load_model()
    report = run_replay(records, model, until=until, out_dir=out_dir)
    assert report.events == len(events) and not report.dead_lettered
    changes = [json.loads(line) for line in (out_dir / "changes.jsonl").read_text().splitlines()]
    actions = [json.loads(line) for line in (out_dir / "actions.jsonl").read_text().splitlines()]
    replay = OfflineReplay(model)
    for record in records:
        assert record.event is not None
        replay.apply(record.event)
    replay.advance_to(until)
    return changes, actions, {cid: state.as_dict() for cid, state in replay.states.items()}


def compare(got: list[dict], want: list[dict], id_field: str) -> dict[str, int]:
    """Missing, extra and repeated ids of the live messages against the replay's, and differing contents."""
    want_by_id = {m[id_field]: m for m in want}
    assert len(want_by_id) == len(want), "the offline replay repeated an id"
    seen = Counter(m[id_field] for m in got)
    differing = sum(1 for m in got if m[id_field] in want_by_id and m != want_by_id[m[id_field]])
    return {
        "want": len(want_by_id),
        "missing": len(set(want_by_id) - set(seen)),
        "extra": len(set(seen) - set(want_by_id)),
        "repeated": sum(n - 1 for n in seen.values()),
        "differing": differing,
    }


def test_kills_a_graceful_redis_restart_and_a_restore_from_an_older_snapshot_end_as_the_offline_replay(
    deploy, engine, redis_server, tmp_path
):
    started = time.monotonic()
    rng = random.Random(SEED)
    assert PLAN.count("kill") == KILLS
    redis_server.start(tmp_path / "redis", appendonly=True)
    events = list(sample.generate(CUSTOMERS, seed=SEED, start=START))
    d = deploy(
        JOURNEY_CLOCK="event",
        JOURNEY_REDIS_URL=redis_server.url,
        JOURNEY_PARTITIONS="4",
        JOURNEY_BATCH_SIZE="250",
        JOURNEY_SESSION_TIMEOUT_S="3",
        JOURNEY_HEARTBEAT_INTERVAL_S="0.5",
        JOURNEY_RETRY_MAX_BACKOFF_S="0.5",
        JOURNEY_SWEEP_INTERVAL_S="0.5",
    )
    size = -(-len(events) // (len(PLAN) + 1))
    chunks = [events[i : i + size] for i in range(0, len(events), size)]
    assert len(chunks) == len(PLAN) + 1
    counts: Counter = Counter()
    behind = 0  # offsets the restore set Redis back by, summed over the partitions
    snapshot = tmp_path / "snapshot.rdb"

    worker = d.start_worker()
    for chunk, fault in zip(chunks, PLAN, strict=False):
        before = sum(applied_offsets(d).values()) if counts["steps"] else -d.settings.partitions
        d.produce(chunk)
        counts["steps"] += 1
        wait_for(lambda before=before: sum(applied_offsets(d).values()) > before, "the worker to apply input")
        time.sleep(rng.uniform(0.0, 0.6))  # a seeded moment, not a synchronisation
        if fault == "kill":
            counts["mid_stream"] += not caught_up(d)
            worker.kill()
            worker.wait(timeout=WAIT_S)
            counts["kills"] += 1
            worker = d.start_worker()
        elif fault == "restart_redis":
            applied = applied_offsets(d)
            redis_server.shutdown()
            redis_server.start(tmp_path / "redis", appendonly=True)
            after = applied_offsets(d)
            assert all(after[p] >= applied[p] for p in applied), (applied, after)
            counts["redis_restarts"] += 1
        elif fault == "snapshot":
            redis_server.snapshot(snapshot)
        elif fault == "restore":
            applied = applied_offsets(d)
            redis_server.kill()
            restored = tmp_path / "restored"
            restored.mkdir()
            shutil.copy(snapshot, restored / "dump.rdb")
            redis_server.start(restored, appendonly=False)  # from the older snapshot alone, no AOF
            redis_server.client().config_set("appendonly", "yes")  # and durable again from here on
            after = applied_offsets(d)
            assert all(after[p] <= applied[p] for p in applied), (applied, after)
            behind = sum(applied[p] - after[p] for p in applied)
            counts["restores"] += 1
    d.produce(chunks[-1])
    assert behind > 0, "the restored Redis was not behind what had been applied"

    deadline = started + 200
    wait_for(lambda: caught_up(d), "the worker to catch up", timeout=max(10.0, deadline - time.monotonic()))
    until = max(TouchpointEvent.model_validate(e).occurred_ts for e in events) + timedelta(days=1).total_seconds()
    run = CliRunner().invoke(journey, ["advance-clock", "--until", iso(until)], env=d.env)
    assert run.exit_code == 0, run.output
    wait_for(lambda: caught_up(d), "the sweep after the clock advance", timeout=max(10.0, deadline - time.monotonic()))

    want_changes, want_actions, want_states = offline(events, until, tmp_path / "replay")
    changes = compare(d.changes(), want_changes, "change_id")
    actions = compare(d.actions(), want_actions, "action_id")
    states = d.states()
    wrong_states = sum(1 for cid, state in want_states.items() if states.get(cid) != state)
    logs = "\n".join(p.read_text() for p in sorted(d.tmp_path.glob("worker-*.log")))
    lost_letters = [dl for dl in d.dead_letters() if dl["error"].startswith("offsets lost")]
    summary = (
        f"fault suite: {len(events)} events of {CUSTOMERS} customers on {d.settings.partitions} partitions, "
        f"{counts['kills']} kills ({counts['mid_stream']} mid-stream) and {counts['kills']} worker restarts, "
        f"{counts['redis_restarts']} graceful Redis restart, {counts['restores']} restore from a snapshot "
        f"{behind} offsets behind; rewinds logged {logs.count('Redis lost writes')}; "
        f"changes {changes}; actions {actions}; states {len(want_states)} ({wrong_states} differ, "
        f"{len(set(states) - set(want_states))} extra); {time.monotonic() - started:.0f}s"
    )
    print(summary)
    assert counts["kills"] >= 10 and counts["redis_restarts"] == 1 and counts["restores"] == 1, summary
    for found in (changes, actions):
        assert (found["missing"], found["extra"], found["differing"]) == (0, 0, 0), summary
    assert wrong_states == 0 and set(states) == set(want_states), summary
    assert not lost_letters, summary
