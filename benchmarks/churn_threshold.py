"""How the churn.yaml threshold was picked: F1, precision and recall of `churn_risk >= t` on generated customers.

Customers are drawn from known BG/NBD parameters (in days), each first buying between 0 and 730 days before a
cut; the model's own churn risk at the cut (the true parameters: the best any fit can do) is compared with the
label "no purchase in the 90 days after the cut". Printed per parameter set and threshold; `journey evaluate`
does the same on a real history with a fitted model.

    python benchmarks/churn_threshold.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # runnable as a plain script from a checkout

from streams.core.churn.bgnbd import Params, churn_risk

#: CDNOW's estimates with alpha in days, the same with alpha as published (weeks read as days: faster buyers),
#: a frequent-buyer base, and one with a < 1 (the sets of tests/unit/churn/test_bgnbd.py).
SETS = {
    "cdnow-days": Params(0.243, 30.9, 0.793, 2.426),
    "cdnow": Params(0.243, 4.414, 0.793, 2.426),
    "frequent": Params(1.0, 20.0, 2.0, 5.0),
    "a-below-1": Params(0.5, 10.0, 0.5, 1.5),
}
THRESHOLDS = [round(t, 2) for t in np.arange(0.3, 0.96, 0.05)]


def simulate(params: Params, n: int, span: float, horizon: float, seed: int):
    """(x, t_x, T, churned) at the cut: repeat purchases, first to last, first to cut (days), none in the horizon."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(0.0, span, n)
    lam = rng.gamma(params.r, 1.0 / params.alpha, n)
    drop = rng.beta(params.a, params.b, n)
    x, t_x, churned = np.zeros(n), np.zeros(n), np.ones(n, dtype=bool)
    for i in range(n):
        t = 0.0
        while rng.random() >= drop[i]:  # alive after the purchase at t
            t += rng.exponential(1.0 / lam[i])
            if t > age[i] + horizon:
                break
            if t <= age[i]:
                x[i] += 1
                t_x[i] = t
            else:
                churned[i] = False
                break
    return x, t_x, age, churned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--horizon", type=float, default=90.0)
    args = parser.parse_args()
    for name, params in SETS.items():
        x, t_x, T, churned = simulate(params, args.customers, 730.0, args.horizon, seed=1)
        risk = np.array([churn_risk(params, a, b, c, args.horizon) for a, b, c in zip(x, t_x, T, strict=True)])
        print(f"{name} {params}: {churned.mean():.1%} churned in the horizon")
        for t in THRESHOLDS:
            flagged = risk >= t
            hits = int((flagged & churned).sum())
            precision = hits / max(int(flagged.sum()), 1)
            recall = hits / max(int(churned.sum()), 1)
            f1 = 2 * precision * recall / max(precision + recall, 1e-12)
            print(
                f"  t={t:.2f}  F1 {f1:.3f}  precision {precision:.3f}  recall {recall:.3f}  flagged {flagged.mean():.1%}"
            )


if __name__ == "__main__":
    main()
