"""CPU per event of the churn score in the core: the default rules against churn.yaml with a model, same events.

Generated customers' events (parsed once, before timing) go through `apply_event` in memory, each customer's
state kept in place, and at the end every customer is advanced 180 days past the last event, so the due times
the score makes fire too; the CPU time of all that, divided by the events, is one figure. The two variants run
in turns, back to back, several turns; the medians are compared. A third variant, churn.yaml without a model,
shows what the rules cost when the score has no value. Then the parts, each timed alone: one score read, one
search for the instant the score crosses its threshold, and one due-time computation that finds it kept (the
rules keep a crossing per purchase history).

    python benchmarks/bench_churn_score.py                 # 5 turns of 4,000 customers
    python benchmarks/bench_churn_score.py --turns 7 --customers 8000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable as a plain script from a checkout

from schemas import TouchpointEvent
from streams.core import CustomerState, advance, apply_event
from streams.core.churn.bgnbd import Params
from streams.core.churn.modelfile import ChurnModel
from streams.core.model import Model, load_model
from streams.core.rules.compiled import CHURN_RULES
from streams.core.rules.signals import CATALOGUE, DAY
from streams.local import sample

#: A fit of the kind `journey fit` writes (the CDNOW estimates, in days): what the benchmark scores with.
MODEL = ChurnModel(Params(0.243, 30.9, 0.793, 2.426), "bench-model.yaml", "2026-01-01T00:00:00Z")
TAIL_DAYS = 180


def run(model: Model, events: list[TouchpointEvent]) -> tuple[float, int, int]:
    """(CPU seconds, changes, at_risk changes) of the events through the core, then the clock on to the tail."""
    states: dict[str, CustomerState] = {}
    changes = at_risk = 0
    model.rules._crossings.clear()  # every turn starts with no crossing kept, as a worker starting does
    started = time.process_time()
    for event in events:
        out = apply_event(states.get(event.customer_id), event, model, in_place=True)
        states[event.customer_id] = out.state
        changes += len(out.changes)
        at_risk += sum(1 for c in out.changes if c.to == "at_risk")
    until = max(e.occurred_ts for e in events) + TAIL_DAYS * DAY
    for state in states.values():
        out = advance(state, until, model, in_place=True)
        changes += len(out.changes)
        at_risk += sum(1 for c in out.changes if c.to == "at_risk")
    return time.process_time() - started, changes, at_risk


def parts(model: Model, repeat: int) -> tuple[float, float, float]:
    """µs of one churn_risk read, of one search for a crossing (`Rules._crossing`: the root find and the
    millisecond it flips at), and of one `Rules.next_due` that finds the crossing kept, for a buyer with
    repeat purchases (churn.yaml)."""
    rules = model.rules
    t0 = datetime(2026, 1, 5, tzinfo=UTC).timestamp()
    state = CustomerState(customer_id="c", first_seen=t0, last_seen=t0 + 25 * DAY)
    state.purchases, state.first_purchase_at, state.last_purchase_at = 4, t0, t0 + 25 * DAY
    read = CATALOGUE["churn_risk"].read
    now = t0 + 40 * DAY
    started = time.perf_counter()
    for _ in range(repeat):
        read(state, now, rules.ctx)
    score = (time.perf_counter() - started) / repeat * 1e6
    after = t0 + 55 * DAY  # past the 30-day floor: the due time is the score's crossing
    searches = repeat // 10
    started = time.perf_counter()
    for _ in range(searches):
        rules._crossing(0, state, after)
    search = (time.perf_counter() - started) / searches * 1e6
    started = time.perf_counter()
    for _ in range(searches):
        rules.next_due(state, after)
    due = (time.perf_counter() - started) / searches * 1e6
    return score, search, due


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=4000)
    parser.add_argument("--turns", type=int, default=5)
    args = parser.parse_args()
    events = [TouchpointEvent.model_validate(raw) for raw in sample.generate(args.customers, seed=11)]
    purchases = sum(1 for e in events if e.touchpoint.value == "purchase")
    variants = {
        "default rules": load_model(),
        "churn.yaml + model": load_model(CHURN_RULES, churn=MODEL),
        "churn.yaml, no model": load_model(CHURN_RULES),
    }
    print(
        f"{len(events):,} events of {args.customers:,} customers ({purchases:,} purchases), then {TAIL_DAYS} days "
        f"more; {args.turns} turns, variants back to back in each"
    )
    per_event: dict[str, list[float]] = {name: [] for name in variants}
    for turn in range(args.turns):
        figures = []
        for name, model in variants.items():
            cpu, changes, at_risk = run(model, events)
            per_event[name].append(cpu / len(events) * 1e6)
            figures.append(f"{name} {per_event[name][-1]:.2f} µs ({changes:,} changes, {at_risk:,} at_risk)")
        print(f"turn {turn + 1}: " + "; ".join(figures))
    medians = {name: statistics.median(values) for name, values in per_event.items()}
    base = medians["default rules"]
    for name, median in medians.items():
        delta = "" if name == "default rules" else f"  ({median - base:+.2f} µs, {(median / base - 1) * 100:+.1f} %)"
        print(f"median {name:>22}: {median:.2f} µs CPU per event{delta}")
    score, search, due = parts(variants["churn.yaml + model"], 20_000)
    print(
        f"one churn_risk read: {score:.2f} µs; one crossing search: {search:.1f} µs; "
        f"one next_due with the crossing kept: {due:.1f} µs"
    )


if __name__ == "__main__":
    main()
