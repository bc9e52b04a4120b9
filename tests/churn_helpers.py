"""For the churn tests: a brute-force search for the instant a rule's comparison on a churn score flips (to
check the due times the rules compute from the model), and a logistic model file as `journey fit --kind
logistic` writes it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from streams.churn.logistic import fit_logistic
from streams.churn.logistic_file import to_document
from streams.core.churn.features import FEATURES
from streams.core.churn.modelfile import write_model
from streams.core.rules.signals import DAY
from streams.core.state import CustomerState


def brute_force(rules, state: CustomerState, after: float, name: str, op: str, limit: float) -> float | None:
    """The first millisecond after `after` at which the comparison's answer differs from its answer at `after`:
    a scan on a 0.01-day grid, then on a 1-second grid, then on a millisecond grid (within two years)."""
    compare = {"gte": float.__ge__, "gt": float.__gt__, "lte": float.__le__, "lt": float.__lt__}[op]

    def answer(at: float) -> bool:
        return compare(float(rules.values(state, at)[name]), limit)

    start = answer(after)
    lo = after
    for step in (0.01 * DAY, 1.0, 0.001):
        at = lo
        while answer(at) == start:
            lo = at
            at = round(at + step, 3)
            if at > after + 730 * DAY:
                return None
    return at


def logistic_document(horizon: float = 90.0) -> dict:
    """A logistic model trained (non-negative time weights) on made-up features, as a model file's content."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, len(FEATURES))) + 2.0
    y = (X[:, 0] + rng.normal(size=400) > 2.0).astype(float)
    fitted = fit_logistic(X, y, monotone=True)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return to_document(fitted, "orders.csv", at, at, horizon, 30.0, y.astype(bool), 0.5)


def write_logistic(path: Path, horizon: float = 90.0) -> Path:
    write_model(path, logistic_document(horizon))
    return path
