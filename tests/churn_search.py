"""A brute-force search for the instant a rule's comparison on a churn score flips, for the tests that check
the due times the rules compute from the model."""

from __future__ import annotations

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
