"""The offline replay: deterministic outputs, bad lines, `--until`, golden diffs, the chart, the CLI.

No Kafka, no Redis (`--redis` is tested in tests/integration/test_replay_redis.py).
Expected values are derived from the inputs and the rules, not copied from the code's output.
The thresholds live in the rules file, so "another threshold" is a copy of it with one number changed.
"""

from __future__ import annotations

import json
import random
import xml.etree.ElementTree as ET
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from streams.cli import main as journey
from streams.core.model import Model, load_model
from streams.core.rules.compiled import DEFAULT_RULES
from streams.local.sample import SAMPLE_FILE
from streams.replay.golden import compare
from streams.replay.run import run_replay
from streams.replay.sources import iter_records

DAY = 86_400.0

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = ROOT / "tests" / "golden" / "sample"
UNTIL = "2027-01-01T00:00:00Z"
REGENERATE = f"journey replay streams/local/data/sample-journeys.jsonl --until {UNTIL} --out tests/golden/sample"
OUTPUTS = ("changes.jsonl", "actions.jsonl")
#: The at-risk rule of the shipped rules: quiet for max(30 days, 3 × their purchase rhythm).
AT_RISK_QUIET = "{signal: days_since_last_purchase, gte: {signal: purchase_rhythm_days, times: 3, floor: 30}}"
#: …and the lapsed rule: max(180 days, 6 × rhythm).
LAPSED_QUIET = "{signal: days_since_last_purchase, gte: {signal: purchase_rhythm_days, times: 6, floor: 180}}"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def rules_with_floor(tmp_path: Path, days: int) -> Path:
    """A copy of the shipped rules whose at-risk floor is `days` instead of 30."""
    text = DEFAULT_RULES.read_text()
    assert text.count(AT_RISK_QUIET) == 1, "the shipped at-risk rule changed: update AT_RISK_QUIET"
    path = tmp_path / f"rules-floor-{days}.yaml"
    path.write_text(text.replace(AT_RISK_QUIET, AT_RISK_QUIET.replace("floor: 30", f"floor: {days}")))
    return path


def replay(path: Path, out: Path, model: Model | None = None, until: str | None = UNTIL, **kw):
    return run_replay(
        iter_records(path),
        model or load_model(),
        until=None if until is None else datetime.fromisoformat(until),
        out_dir=out,
        **kw,
    )


def lifecycle_changes(path: Path) -> list[dict]:
    return [c for c in lines(path) if c["dimension"] == "lifecycle"]


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def by_customer(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for line in path.read_text().splitlines():
        out[json.loads(line)["customer_id"]].append(line)
    return dict(out)


def event(eid: str, customer: str, when: datetime, kind: str = "page_view", **extra) -> dict:
    stage = "purchase" if kind == "purchase" else "pre_purchase"
    e = {
        "event_id": eid,
        "customer_id": customer,
        "occurred_at": when.isoformat().replace("+00:00", "Z"),
        "stage": stage,
        "touchpoint": kind,
        "channel": "web",
        **extra,
    }
    if kind == "purchase":
        e["payload"] = {"kind": "order", "amount": 50.0, "currency": "EUR"}
    return e


def write_jsonl(path: Path, rows: list[dict | str]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


# ----------------------------------------------------------------------------- golden


def test_sample_replay_matches_the_golden_outputs(tmp_path):
    replay(SAMPLE_FILE, tmp_path)
    diff = compare(tmp_path, GOLDEN)
    assert diff.same, (
        "the replay of the bundled sample no longer gives the golden outputs:\n"
        + "\n".join(diff.lines(limit=30))
        + f"\n\nIf this change is intended, review the diff above, then regenerate the golden files with\n"
        f"    {REGENERATE}\nand commit them (see tests/golden/README.md)."
    )


def test_golden_diff_names_the_customers_a_threshold_change_moves(tmp_path):
    replay(SAMPLE_FILE, tmp_path / "out", load_model(rules_with_floor(tmp_path, 60)))
    tmp_path = tmp_path / "out"
    diff = compare(tmp_path, GOLDEN)
    assert diff.exit_code == 1 and not diff.same

    # Independently: customers whose at-risk steps (rule lifecycle.at_risk) differ between the files.
    def at_risk_steps(path):
        return {cid: [x for x in rows if '"lifecycle.at_risk"' in x] for cid, rows in by_customer(path).items()}

    now, golden = at_risk_steps(tmp_path / "changes.jsonl"), at_risk_steps(GOLDEN / "changes.jsonl")
    moved = sorted(cid for cid in now.keys() | golden.keys() if now.get(cid) != golden.get(cid))
    assert moved, "a 60-day floor must move some at-risk changes of the sample"
    named = {c.customer_id for c in diff.customers}
    assert set(moved) <= named
    assert diff.changed_per_type["at_risk"] >= len(moved)

    # The golden run flagged some customers after fewer than 60 quiet days; now no one is.
    def quiet_days(steps):
        return [
            json.loads(s.line)["reason"]["evidence"]["days_since_last_purchase"]
            for s in steps
            if json.loads(s.line)["to"] == "at_risk" and json.loads(s.line)["caused_by"].startswith("inactivity@")
        ]

    assert any(days < 60 for c in diff.customers for days in quiet_days(c.removed))
    assert all(days >= 60 for c in diff.customers for days in quiet_days(c.added))
    # In words: a step that only moved is one line, naming both times and what its evidence changed.
    text = "\n".join(diff.lines())
    assert f"{moved[0]}: " in text and "→ at_risk moved from " in text and "days_since_last_purchase " in text


def test_golden_diff_of_identical_outputs_is_empty(tmp_path):
    diff = compare(GOLDEN, GOLDEN)
    assert diff.same and diff.exit_code == 0 and not diff.customers and not diff.actions


def test_golden_diff_reports_removed_and_added_actions_and_final_types(tmp_path):
    run, golden = tmp_path / "run", tmp_path / "golden"
    run.mkdir(), golden.mkdir()
    changes = (GOLDEN / "changes.jsonl").read_text().splitlines()
    actions = (GOLDEN / "actions.jsonl").read_text().splitlines()
    # The last lifecycle change that triggered an action and is its customer's last lifecycle change.
    triggered = {json.loads(a)["triggered_by"] for a in actions}
    last_of = {}
    for i, line in enumerate(changes):
        c = json.loads(line)
        if c["dimension"] == "lifecycle":
            last_of[c["customer_id"]] = i
    index = max(i for i in last_of.values() if json.loads(changes[i])["change_id"] in triggered)
    last = json.loads(changes[index])
    dropped_action = next(a for a in actions if json.loads(a)["triggered_by"] == last["change_id"])
    (golden / "changes.jsonl").write_text("\n".join(changes) + "\n")
    (golden / "actions.jsonl").write_text("\n".join(actions) + "\n")
    (run / "changes.jsonl").write_text("\n".join(changes[:index] + changes[index + 1 :]) + "\n")
    (run / "actions.jsonl").write_text("\n".join(a for a in actions if a != dropped_action) + "\n")

    diff = compare(run, golden)
    assert [c.customer_id for c in diff.customers] == [last["customer_id"]]
    [c] = diff.customers
    assert [json.loads(s.line) for s in c.removed] == [last] and not c.added
    assert c.final_golden == last["to"] and c.final_now == last["from"]
    assert diff.actions_removed == {json.loads(dropped_action)["action"]: 1} and not diff.actions_added
    assert diff.final_counts[last["to"]][0] == diff.final_counts[last["to"]][1] + 1
    text = diff.lines()
    cid, when = last["customer_id"], last["at"][:16].replace("T", " ")
    [removed] = [x for x in text if x.startswith(f"{cid}: {last['from']} → {last['to']} at {when} (")]
    assert f"({last['reason']['rule']}: " in removed and removed.endswith("— in golden, not now")
    assert f"{cid}: final type {last['from']} (golden: {last['to']})" in text
    assert any(x.startswith(f"{cid}: -") and x.endswith("— in golden, not now") for x in text)

    # And the reverse: a change the golden run did not have.
    diff = compare(golden, run)
    assert any(x.startswith(f"{cid}: {last['from']} → ") and x.endswith("— not in golden") for x in diff.lines())
    assert diff.actions_added and not diff.actions_removed


def test_a_global_reordering_alone_is_reported(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in OUTPUTS:
        rows = (GOLDEN / name).read_text().splitlines()
        # the same lines per customer, customers' blocks in another order
        grouped = defaultdict(list)
        for row in rows:
            grouped[json.loads(row)["customer_id"]].append(row)
        (run / name).write_text("".join(r + "\n" for cid in sorted(grouped, reverse=True) for r in grouped[cid]))
    diff = compare(run, GOLDEN)
    assert not diff.customers and not diff.actions
    assert diff.reordered_files == list(OUTPUTS) and diff.exit_code == 1


# ----------------------------------------------------------------------------- determinism


def test_the_same_file_replayed_twice_gives_byte_identical_outputs(tmp_path):
    replay(SAMPLE_FILE, tmp_path / "a")
    replay(SAMPLE_FILE, tmp_path / "b")
    for name in (*OUTPUTS, "summary.json", "transitions.svg"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "changes.jsonl").stat().st_size > 0


def test_events_of_different_customers_at_the_same_instant_can_come_in_any_order(tmp_path):
    """Each customer's outputs depend on their own events, in their order, and not on how the
    customers are interleaved - among events of the same instant (here: the sample with every
    time cut to its day, so each day's events share one instant).

    Not among events of different instants: the clock is the latest event time read, so an event
    read after a later one of another customer is late, and may find its customer already changed
    by a due time the clock passed (as the live worker does with a partition that lags).
    """
    rows = [json.loads(x) for x in SAMPLE_FILE.read_text().splitlines()]
    for row in rows:
        row["occurred_at"] = row["occurred_at"][:10] + "T00:00:00Z"
    rng = random.Random(11)
    shuffled: list[dict] = []
    day_start = 0
    while day_start < len(rows):
        day_end = day_start
        while day_end < len(rows) and rows[day_end]["occurred_at"] == rows[day_start]["occurred_at"]:
            day_end += 1
        queues = defaultdict(list)
        for row in rows[day_start:day_end]:
            queues[row["customer_id"]].append(row)
        order = [cid for cid, q in queues.items() for _ in q]
        rng.shuffle(order)  # which customer goes next; each customer's events keep their order
        shuffled += [queues[cid].pop(0) for cid in order]
        day_start = day_end
    assert shuffled != rows and sorted(map(json.dumps, shuffled)) == sorted(map(json.dumps, rows))

    replay(write_jsonl(tmp_path / "in-order.jsonl", rows), tmp_path / "a")
    replay(write_jsonl(tmp_path / "shuffled.jsonl", shuffled), tmp_path / "b")
    for name in OUTPUTS:
        a, b = tmp_path / "a" / name, tmp_path / "b" / name
        assert a.read_bytes() != b.read_bytes(), "the shuffle should change the files' global order"
        assert by_customer(a) == by_customer(b), name


# ----------------------------------------------------------------------------- --until and bad lines


def test_until_applies_inactivity_after_the_last_event(tmp_path):
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    purchases = [event(f"e{i}", "c1", t0 + timedelta(days=10 * i), "purchase") for i in range(3)]
    source = write_jsonl(tmp_path / "in.jsonl", purchases)
    assert AT_RISK_QUIET in DEFAULT_RULES.read_text() and LAPSED_QUIET in DEFAULT_RULES.read_text()

    without = replay(source, tmp_path / "without", until=None)
    assert without.lifecycle == {"loyal": 1}

    # Independently, from the shipped rules: three purchases 10 days apart make a rhythm of 10 days;
    # at risk after max(30, 3 × 10) days without a purchase, lapsed after max(180, 6 × 10).
    last = (t0 + timedelta(days=20)).timestamp()
    at_risk, lapsed = last + 30 * DAY, last + 180 * DAY
    report = replay(source, tmp_path / "with", until=UNTIL)
    assert report.lifecycle == {"lapsed": 1}
    steps = [
        (c["from"], c["to"], c["caused_by"], c["at"]) for c in lifecycle_changes(tmp_path / "with" / "changes.jsonl")
    ]
    assert steps[-2:] == [
        ("loyal", "at_risk", f"inactivity@{iso(at_risk)}", iso(at_risk)),
        ("at_risk", "lapsed", f"inactivity@{iso(lapsed)}", iso(lapsed)),
    ]

    # An --until between the two: at risk only; before the first: nothing changes.
    between = datetime.fromtimestamp(lapsed - 1, UTC).isoformat()
    assert replay(source, tmp_path / "between", until=between).lifecycle == {"at_risk": 1}
    early = datetime.fromtimestamp(at_risk - 1, UTC).isoformat()
    assert replay(source, tmp_path / "early", until=early).lifecycle == {"loyal": 1}


def test_bad_lines_are_reported_with_their_line_numbers_and_the_rest_is_processed(tmp_path):
    good = [json.loads(x) for x in SAMPLE_FILE.read_text().splitlines()[:300]]
    naive = dict(good[0], event_id="bad-naive", occurred_at="2026-03-01T10:00:00")
    wrong_stage = dict(good[0], event_id="bad-stage", stage="post_purchase")
    rows: list[dict | str] = [
        *good[:10],
        "{not json",
        *good[10:100],
        "",
        naive,
        *good[100:200],
        wrong_stage,
        "   ",
        *good[200:],
    ]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    expected_lines = {11: "Invalid JSON", 103: "occurred_at", 204: "contradicts touchpoint"}

    report = replay(source, tmp_path / "out")
    dead = lines(tmp_path / "out" / "dead-letters.jsonl")
    assert [d["line"] for d in dead] == sorted(expected_lines)
    for d in dead:
        assert expected_lines[d["line"]] in d["error"]
    assert report.dead_letters == 3 and report.events == 300 and report.records == 303
    assert sum(report.dead_lettered.values()) == 3 and len(report.dead_lettered) == 3

    clean = replay(write_jsonl(tmp_path / "clean.jsonl", good), tmp_path / "clean")
    for name in OUTPUTS:
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "clean" / name).read_bytes()
    assert clean.summary()["transitions"] == report.summary()["transitions"]


def test_the_report_counts_match_the_output_files(tmp_path):
    report = replay(SAMPLE_FILE, tmp_path)
    changes, actions = lines(tmp_path / "changes.jsonl"), lines(tmp_path / "actions.jsonl")
    assert report.changes == len(changes) and report.actions == len(actions)
    lifecycle = [c for c in changes if c["dimension"] == "lifecycle"]
    traits = [c for c in changes if c["dimension"] == "trait"]
    assert sum(report.transitions.values()) == len(lifecycle)
    assert sum(report.traits_entered.values()) == sum(1 for c in traits if c["to"] is not None)
    assert sum(report.traits_cleared.values()) == sum(1 for c in traits if c["to"] is None)
    assert sum(report.actions_sent.values()) == len(actions)
    final, held = {}, defaultdict(set)
    for c in lifecycle:
        final[c["customer_id"]] = c["to"]
    for c in traits:
        if c["to"] is None:
            held[c["customer_id"]].discard(c["from"])
        else:
            held[c["customer_id"]].add(c["to"])
    assert report.customers == len(final) == 300
    assert dict(report.lifecycle) == {t: list(final.values()).count(t) for t in set(final.values())}
    per_trait = defaultdict(int)
    for names in held.values():
        for name in names:
            per_trait[name] += 1
    assert dict(report.traits) == dict(per_trait)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["customers_per_lifecycle"] == dict(report.lifecycle)
    assert summary["customers_per_trait"] == dict(sorted(per_trait.items()))
    assert summary["actions_suppressed"] == dict(report.actions_suppressed)
    assert sum(x["times"] for x in summary["suppressed_per_reason"]) == sum(report.actions_suppressed.values())


# ----------------------------------------------------------------------------- the chart


def test_the_transition_chart_is_well_formed_svg_with_the_transition_labels(tmp_path):
    report = replay(SAMPLE_FILE, tmp_path)
    root = ET.parse(tmp_path / "transitions.svg").getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]
    titles = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}title")]
    for (a, b), n in report.transitions.items():
        name = f"{a or '—'} → {b}"
        assert name in texts, name
        assert f"{name}: {n}" in titles
    for kind in ("prospect", "new", "loyal", "at_risk"):
        assert kind in texts


# ----------------------------------------------------------------------------- the CLI


def test_cli_replay_exits_0_when_the_outputs_match_the_golden_ones(tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        journey,
        ["replay", str(SAMPLE_FILE), "--until", UNTIL, "--out", str(out), "--compare", str(GOLDEN)],
        env={"JOURNEY_RULES_FILE": None, "JOURNEY_PLAYBOOK_FILE": None},
    )  # the shipped ones
    assert result.exit_code == 0, result.output
    assert "same as golden" in result.output
    assert "Lifecycle transitions" in result.output and "win_back_offer" in result.output
    assert {p.name for p in out.iterdir()} >= {*OUTPUTS, "dead-letters.jsonl", "summary.json", "transitions.svg"}


def test_cli_replay_exits_1_and_names_customers_when_the_outputs_differ(tmp_path):
    rules = rules_with_floor(tmp_path, 60)
    result = CliRunner().invoke(
        journey,
        [
            "replay",
            str(SAMPLE_FILE),
            "--until",
            UNTIL,
            "--out",
            str(tmp_path / "out"),
            "--compare",
            str(GOLDEN),
            "--rules",
            str(rules),
        ],
    )
    assert result.exit_code == 1, result.output
    assert "lifecycle paths differ for" in result.output
    assert "moved from" in result.output and "cust-" in result.output


def test_cli_replay_refuses_a_naive_time_kafka_with_offline_options_and_a_bad_rules_file(tmp_path):
    runner = CliRunner()
    naive = runner.invoke(
        journey, ["replay", str(SAMPLE_FILE), "--until", "2027-01-01T00:00:00", "--out", str(tmp_path)]
    )
    assert naive.exit_code == 2 and "timezone" in naive.output
    both = runner.invoke(journey, ["replay", str(SAMPLE_FILE), "--to-kafka", "--compare", str(GOLDEN)])
    assert both.exit_code == 2 and "offline replay only" in both.output
    bad_rules = tmp_path / "rules.yaml"
    bad_rules.write_text("version: 1\nlifecycle: [{type: x, when: {signal: no_such_signal, gte: 1}}]\n")
    refused = runner.invoke(journey, ["replay", str(SAMPLE_FILE), "--rules", str(bad_rules), "--out", str(tmp_path)])
    assert refused.exit_code == 2 and "error: " in refused.output and not (tmp_path / "changes.jsonl").exists()


def test_cli_replay_reads_an_export_through_a_mapping(tmp_path):
    export = tmp_path / "orders.csv"
    export.write_text(
        "customer_id,date,quantity,amount\nc1,2026-03-01,1,19.90\nc1,2026-03-08,1,12.50\n"
        "c2,2026-03-09,1,abc\nc1,2026-03-20,1,30.00\n"
    )
    result = CliRunner().invoke(
        journey,
        [
            "replay",
            str(export),
            "--mapping",
            "orders",
            "--out",
            str(tmp_path / "out"),
            "--until",
            "2026-09-01T00:00:00Z",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["events"] == 3 and summary["dead_lettered"] == 1
    assert summary["customers_per_lifecycle"] == {"at_risk": 1}
    assert [d["line"] for d in lines(tmp_path / "out" / "dead-letters.jsonl")] == [4]
