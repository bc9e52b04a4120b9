"""The offline replay's guarded clock: events dated too far ahead of its instant (`--now`, else `--until`) or
before the floor are dead-lettered, so one far-future line cannot fire every customer's due time; and the
replay never reads the machine's clock, so the same file gives the same outputs whenever it runs."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from streams.cli import main as journey
from streams.core.model import load_model
from streams.core.timeguard import TOO_EARLY, TOO_LATE, TimeGuard
from streams.local.sample import SAMPLE_FILE
from streams.replay.run import OUTPUT_FILES, run_replay
from streams.replay.sources import iter_records

T0 = datetime(2026, 1, 1, tzinfo=UTC)
UNTIL = datetime(2026, 4, 1, tzinfo=UTC)


def event(eid: str, customer: str, when: datetime, kind: str = "purchase") -> dict:
    e = {
        "event_id": eid,
        "customer_id": customer,
        "occurred_at": when.isoformat().replace("+00:00", "Z"),
        "stage": "purchase" if kind == "purchase" else "pre_purchase",
        "touchpoint": kind,
        "channel": "web",
    }
    if kind == "purchase":
        e["payload"] = {"kind": "order", "amount": 50.0, "currency": "EUR"}
    return e


def journeys() -> list[dict]:
    """Three buyers with a purchase every 10 days for 40 days: none is due to turn at risk before March."""
    return [event(f"{c}-{i}", c, T0 + timedelta(days=10 * i, hours=n)) for n, c in enumerate("abc") for i in range(5)]


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def outputs(out: Path) -> dict[str, str]:
    return {name: (out / name).read_text() for name in OUTPUT_FILES}


def test_a_far_future_line_is_dead_lettered_and_fires_nobody_elses_due_time(tmp_path):
    """Before: a line dated 2100 moved the replay's clock there, and every buyer went at risk, then lapsed."""
    rows = journeys()
    poisoned = [*rows[:7], event("from-2100", "d", datetime(2100, 1, 1, tzinfo=UTC), "page_view"), *rows[7:]]
    model = load_model()
    clean = run_replay(iter_records(write(tmp_path / "clean.jsonl", rows)), model, out_dir=tmp_path / "clean")
    report = run_replay(
        iter_records(write(tmp_path / "poisoned.jsonl", poisoned)), model, now=UNTIL, out_dir=tmp_path / "poisoned"
    )
    dead = [json.loads(line) for line in (tmp_path / "poisoned" / "dead-letters.jsonl").read_text().splitlines()]
    assert [d["line"] for d in dead] == [8]
    assert dead[0]["error"].startswith(TOO_LATE) and "2100-01-01" in dead[0]["error"]
    assert report.events == len(rows) and report.dead_letters == 1
    for name in ("changes.jsonl", "actions.jsonl"):
        assert outputs(tmp_path / "poisoned")[name] == outputs(tmp_path / "clean")[name]
    assert "at_risk" not in report.lifecycle and clean.lifecycle == report.lifecycle


def test_until_is_the_default_instant_and_now_overrides_it(tmp_path):
    rows = [*journeys(), event("late", "d", UNTIL + timedelta(minutes=6), "page_view")]
    path = write(tmp_path / "in.jsonl", rows)
    model = load_model()
    by_until = run_replay(iter_records(path), model, until=UNTIL, out_dir=tmp_path / "until")
    assert by_until.dead_letters == 1 and by_until.events == len(rows) - 1
    # Within the tolerance of --until: accepted.
    just = write(tmp_path / "just.jsonl", [*journeys(), event("late", "d", UNTIL + timedelta(minutes=5), "page_view")])
    assert run_replay(iter_records(just), model, until=UNTIL).dead_letters == 0
    # --now later than the event: accepted, whatever --until says.
    later = run_replay(iter_records(path), model, until=UNTIL, now=UNTIL + timedelta(days=1))
    assert later.dead_letters == 0 and later.events == len(rows)
    # A guard with another tolerance (JOURNEY_MAX_EVENT_AHEAD_S) decides as the worker's would.
    wide = run_replay(iter_records(path), model, until=UNTIL, guard=TimeGuard(max_ahead_s=3600))
    assert wide.dead_letters == 0


def test_events_before_the_floor_are_dead_lettered_even_without_an_instant(tmp_path):
    rows = [event("zero-date", "z", datetime(1970, 1, 1, tzinfo=UTC)), *journeys()]
    report = run_replay(iter_records(write(tmp_path / "in.jsonl", rows)), load_model(), out_dir=tmp_path / "out")
    dead = [json.loads(line) for line in (tmp_path / "out" / "dead-letters.jsonl").read_text().splitlines()]
    assert [d["line"] for d in dead] == [1] and dead[0]["error"].startswith(TOO_EARLY)
    assert report.customers == 3


def test_the_replay_never_reads_the_machines_clock(tmp_path, monkeypatch):
    """The same file and options give byte-identical outputs whatever the wall clock says."""
    path = write(tmp_path / "in.jsonl", [*journeys(), event("late", "d", UNTIL + timedelta(days=1), "page_view")])
    run_replay(iter_records(path), load_model(), until=UNTIL, out_dir=tmp_path / "today")
    monkeypatch.setattr(time, "time", lambda: datetime(2099, 1, 1, tzinfo=UTC).timestamp())
    run_replay(iter_records(path), load_model(), until=UNTIL, out_dir=tmp_path / "in-2099")
    assert outputs(tmp_path / "today") == outputs(tmp_path / "in-2099")
    assert len((tmp_path / "today" / "dead-letters.jsonl").read_text().splitlines()) == 1


def test_cli_now_option(tmp_path):
    runner = CliRunner()
    path = write(tmp_path / "in.jsonl", [*journeys(), event("late", "d", UNTIL + timedelta(days=1), "page_view")])
    result = runner.invoke(
        journey, ["replay", str(path), "--until", "2026-04-01T00:00:00Z", "--out", str(tmp_path / "a")]
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["dead_lettered"] == 1
    result = runner.invoke(
        journey,
        [
            "replay",
            str(path),
            "--until",
            "2026-04-01T00:00:00Z",
            "--now",
            "2026-05-01T00:00:00Z",
            "--out",
            str(tmp_path / "b"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["dead_lettered"] == 0
    naive = runner.invoke(journey, ["replay", str(path), "--now", "2026-05-01T00:00:00", "--out", str(tmp_path / "c")])
    assert naive.exit_code == 2 and "--now" in naive.output and "timezone" in naive.output
    kafka = runner.invoke(journey, ["replay", str(SAMPLE_FILE), "--to-kafka", "--now", "2026-05-01T00:00:00Z"])
    assert kafka.exit_code == 2 and "offline replay only" in kafka.output
