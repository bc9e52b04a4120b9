"""The logistic churn model's features, read from the state: one definition for `journey fit`,
`journey evaluate` and the live `churn_risk` signal, so the three score the same customer alike.

Logs of recency, frequency, tenure, rhythm, spend and the support, review and return counts; each
is O(1) from what the state keeps (the event counts are one entry per touchpoint kind).
"""

from __future__ import annotations

import math

from streams.core.state import CustomerState

DAY = 86_400.0
FEATURES = (
    "log_days_since_last_purchase",
    "log_purchases",
    "log_days_since_first_purchase",
    "log_rhythm_days",
    "log_gap_over_rhythm",
    "log_average_spend",
    "log_days_since_last_seen",
    "log_events",
    "log_support_contacts",
    "mean_support_sentiment",
    "log_returns",
    "negative_reviews",
)
#: The features that grow while a customer is quiet (time alone moves them, and never down). With
#: non-negative weights on these the score can only grow with time for a fixed history, so the instant it
#: crosses a threshold is a root in time (`logistic.LogisticModel.crossing`).
GROW_WITH_TIME = (
    "log_days_since_last_purchase",
    "log_days_since_first_purchase",
    "log_gap_over_rhythm",
    "log_days_since_last_seen",
)


def days_since_last_purchase(state: CustomerState, at: float) -> float:
    assert state.last_purchase_at is not None
    return max(0.0, (at - state.last_purchase_at) / DAY)


def own_interval_days(state: CustomerState, first_rhythm_days: float) -> float:
    """The mean interval between purchases; `first_rhythm_days` for a customer with one purchase."""
    interval = state.mean_purchase_interval
    return first_rhythm_days if interval is None else interval / DAY


#: Where the features time moves sit in `FEATURES` (the rest stay put until the next event).
MOVED_AT = tuple(FEATURES.index(name) for name in GROW_WITH_TIME)


def moving_features(state: CustomerState, at: float, rhythm_days: float) -> tuple[float, float, float, float]:
    """The `GROW_WITH_TIME` features at `at` (days since the last purchase, since the first, gap / rhythm, since
    last seen; logs), for a customer with a purchase whose own interval is `rhythm_days`."""
    gap = days_since_last_purchase(state, at)
    assert state.first_purchase_at is not None
    return (
        math.log1p(gap),
        math.log1p(max(0.0, (at - state.first_purchase_at) / DAY)),
        math.log1p(gap / rhythm_days) if rhythm_days > 0 else math.log1p(gap) + 5.0,
        math.log1p(max(0.0, (at - state.last_seen) / DAY)),
    )


def fixed_features(state: CustomerState, rhythm_days: float) -> tuple[float, ...]:
    """The other eight, in `FEATURES` order: only an event changes them."""
    sentiment = state.mean_support_sentiment
    counts = state.counts
    return (
        math.log1p(state.purchases),
        math.log1p(rhythm_days),
        math.log1p(max(0.0, state.average_spend)),
        math.log1p(sum(counts.values())),
        math.log1p(state.support_contacts),
        0.0 if sentiment is None else float(sentiment),
        math.log1p(counts.get("return", 0) + counts.get("refund", 0)),
        float(state.negative_reviews),
    )


def features(state: CustomerState, at: float, first_rhythm_days: float) -> list[float]:
    """The values of `FEATURES`, in order, for a customer with a purchase, at `at`."""
    rhythm = own_interval_days(state, first_rhythm_days)
    gap, tenure, over, seen = moving_features(state, at, rhythm)
    purchases, rhythm_log, spend, events, support, sentiment, returns, negative = fixed_features(state, rhythm)
    return [gap, purchases, tenure, rhythm_log, over, spend, seen, events, support, sentiment, returns, negative]
