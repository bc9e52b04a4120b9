"""Quiet hours on a real Tansu broker and a real redis-server: an action deferred to the end of the
customer's night waits in their state in Redis, survives a `kill -9` of the worker, and the worker
that follows emits it once, at the window's end, with the id the pure core gives it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from journeys import event

from schemas import TouchpointEvent
from streams.cli import main as journey
from streams.core import advance, apply_event
from streams.core.model import load_model
from streams.core.playbook.playbook import DEFAULT_PLAYBOOK_FILE

pytestmark = pytest.mark.integration

QUIET = 'quiet_hours: {from: "21:00", to: "08:00"}\n'


def quiet_playbook(tmp_path: Path) -> Path:
    """The shipped playbook with quiet hours of 21:00–08:00."""
    path = tmp_path / "quiet-playbook.yaml"
    path.write_text(DEFAULT_PLAYBOOK_FILE.read_text().replace("\nsuppress:", f"\n{QUIET}\nsuppress:", 1))
    return path


def test_a_deferred_action_survives_a_kill_and_is_emitted_once_at_the_windows_end(deploy, tmp_path):
    playbook = quiet_playbook(tmp_path)
    d = deploy(JOURNEY_CLOCK="event", JOURNEY_PLAYBOOK_FILE=str(playbook))
    night = datetime(2026, 3, 2, 23, 0, tzinfo=UTC)  # 23:00 in Lisbon (UTC+0 in March)
    sent = event("nora", 1, "page_view", night, country="PT", language="pt-PT")
    # what the pure core decides for her: the lead-nurture sequence, deferred to 08:00, and its id
    model = load_model(playbook_file=playbook)
    decided = apply_event(None, TouchpointEvent.model_validate(sent), model)
    assert [w.action for w in decided.deferred] == ["lead_nurture_sequence"]
    [want] = advance(decided.state, datetime(2026, 3, 3, 9, tzinfo=UTC).timestamp(), model).actions

    d.produce([sent])
    victim = d.start_worker()
    d.wait_stat(victim, "deferred", 1, timeout=90)
    d.wait_caught_up(timeout=60)
    waiting = d.states()["nora"]["deferred"]
    assert [entry[2] for entry in waiting] == ["lead_nurture_sequence"]
    assert [a for a in d.actions() if a["customer_id"] == "nora"] == [], "sent inside the quiet hours"
    victim.kill()  # kill -9: nothing of the worker's memory survives
    victim.wait()

    # the clock passes the window's end while no worker runs
    run = CliRunner().invoke(journey, ["advance-clock", "--until", "2026-03-03T09:00:00Z"], env=d.env)
    assert run.exit_code == 0, run.output
    after = d.start_worker()
    d.wait_caught_up(timeout=90)
    d.wait_stat(after, "actions", 1, timeout=30)
    [got] = [a for a in d.actions() if a["customer_id"] == "nora"]
    assert got["action_id"] == want.action_id
    assert got["at"] == "2026-03-03T08:00:00Z" and got["params"]["deferred_from"] == "2026-03-02T23:00:00Z"
    assert got["triggered_by"] == decided.changes[0].change_id
    assert d.states()["nora"]["deferred"] == []

    # a third worker, after a graceful stop, emits nothing more
    d.stop_worker(after)
    third = d.start_worker()
    # its sweeps run (each a Redis round trip; JOURNEY_SWEEP_INTERVAL_S is 0.5 s here) and find nothing due
    started = d.wait_stat(third, "redis_round_trips", 1)
    d.wait_stat(third, "redis_round_trips", started + 6)
    d.wait_caught_up(timeout=30)
    assert [a["action_id"] for a in d.actions() if a["customer_id"] == "nora"] == [want.action_id]
    assert d.stat(third, "actions") == 0
