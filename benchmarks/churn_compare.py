#!/usr/bin/env python
"""BG/NBD against a logistic model and the plain rules, on the same splits of one history.

    python benchmarks/churn_compare.py HISTORY [--mapping NAME] --split AT:HORIZON [--split ...] [--boot 500]

For each split (AT an ISO time, HORIZON days) the history is read once and replayed to AT and to
AT − HORIZON (`streams.churn.history`). Every buyer by AT is labelled churned when they make no
purchase in (AT, AT + HORIZON]. Scores ranked (ROC AUC):

- bgnbd: `churn_risk` over HORIZON, BG/NBD fitted (`fit_bgnbd`) on the histories up to AT;
- logistic: `streams.churn.logistic`, trained on features at AT − HORIZON and labels from
  (AT − HORIZON, AT], applied at AT;
- logistic_monotone: the same with non-negative weights on the features that grow with time
  (`logistic.GROW_WITH_TIME`), so that its score, like `churn_risk`, only grows while a customer is quiet;
- days since the last purchase (the "no purchase in 90 days" rule's score) and gap / own interval.

Prints each AUC and, for logistic − bgnbd and bgnbd − recency, the difference with a 95 % interval
from a paired bootstrap over customers (`--boot` resamples). Figures only, never asserted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    import numpy as np

    from streams.churn import baselines
    from streams.churn.evaluate_command import labelled
    from streams.churn.history import DAY, bgnbd_inputs
    from streams.churn.logistic import features, fit_logistic
    from streams.churn.metrics import roc_auc
    from streams.churn.reading import parse_at, read_history, rules_model
    from streams.core.churn.bgnbd import churn_risk
    from streams.core.churn.fit import fit_bgnbd

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("history", type=Path)
    parser.add_argument("--mapping", default=None)
    parser.add_argument("--split", action="append", required=True, metavar="AT:HORIZON")
    parser.add_argument("--boot", type=int, default=500)
    args = parser.parse_args()
    model = rules_model(None)
    first_rhythm = float(model.rules.spec.settings.first_rhythm_days)
    rng = np.random.default_rng(0)
    for split in args.split:
        at_text, horizon_text = split.rsplit(":", 1)
        at, horizon = parse_at(at_text).timestamp(), float(horizon_text)
        started = time.perf_counter()
        history = read_history(
            args.history, args.mapping, model, [(at, horizon * DAY), (at - horizon * DAY, horizon * DAY)]
        )
        now, earlier = labelled(history.cuts[0]), labelled(history.cuts[1])
        states = [now.cut.states[c] for c in now.ids]
        inputs = [bgnbd_inputs(s, at) for s in states]
        x, t_x, T = (np.array(c, dtype=float) for c in zip(*inputs, strict=True))
        fit = fit_bgnbd(x, t_x, T)
        truth = now.churned
        scores = {
            "bgnbd": np.array([churn_risk(fit.params, *i, horizon) for i in inputs]),  # type: ignore[misc]
            "days_since": np.array([baselines.days_since_last_purchase(s, at) for s in states]),
            "gap_ratio": np.array([baselines.gap_ratio(s, at, first_rhythm) for s in states]),
        }
        X = [features(earlier.cut.states[c], earlier.cut.at, first_rhythm) for c in earlier.ids]
        logistic = fit_logistic(X, earlier.churned)
        now_X = np.array([features(s, at, first_rhythm) for s in states])
        scores["logistic"] = logistic.predict(now_X)
        scores["logistic_monotone"] = fit_logistic(X, earlier.churned, monotone=True).predict(now_X)
        auc = {name: roc_auc(score, truth) for name, score in scores.items()}
        print(
            f"{args.history.name} at {at_text} horizon {horizon:g} d: {len(truth):,} buyers, "
            f"{int(truth.sum()):,} churned ({truth.mean():.1%}); trained on {len(earlier.ids):,}; "
            f"{time.perf_counter() - started:.1f} s"
        )
        print("  AUC " + ", ".join(f"{name} {value:.4f}" for name, value in auc.items()))
        diffs: dict[str, list[float]] = {
            "logistic - bgnbd": [],
            "bgnbd - days_since": [],
            "logistic - days_since": [],
            "logistic_monotone - bgnbd": [],
        }
        n = len(truth)
        for _ in range(args.boot):
            pick = rng.integers(0, n, n)
            got = {name: roc_auc(score[pick], truth[pick]) for name, score in scores.items()}
            for key in diffs:
                a, b = key.split(" - ")
                diffs[key].append(got[a] - got[b])  # type: ignore[operator]
        for key, values in diffs.items():
            a, b = key.split(" - ")
            low, high = np.percentile(values, [2.5, 97.5])
            print(f"  {key}: {auc[a] - auc[b]:+.4f} (95 % {low:+.4f} to {high:+.4f})")  # type: ignore[operator]


if __name__ == "__main__":
    main()
