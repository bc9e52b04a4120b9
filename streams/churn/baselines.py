"""The plain rules `journey evaluate` sets beside the product's decision, and what each ranks by.

- "no purchase in the last 90 days": at risk when the last purchase is 90 days old or more; ranked by
  the days since the last purchase.
- "gap above twice one's own interval": at risk when the days since the last purchase exceed twice
  the customer's mean interval between purchases; ranked by that ratio. A customer with one purchase
  has no interval of their own: the rules file's `first_rhythm_days` stands in for it, as it does for
  the shipped rules' `purchase_rhythm_days` signal, so both judge one-time buyers alike. Purchases all
  at one instant (interval 0) rank above everyone once any time has passed.
"""

from __future__ import annotations

import math

from streams.core import CustomerState

DAY = 86_400.0
QUIET_DAYS = 90.0
GAP_TIMES = 2.0


def days_since_last_purchase(state: CustomerState, at: float) -> float:
    assert state.last_purchase_at is not None
    return max(0.0, (at - state.last_purchase_at) / DAY)


def own_interval_days(state: CustomerState, first_rhythm_days: float) -> float:
    interval = state.mean_purchase_interval
    return first_rhythm_days if interval is None else interval / DAY


def gap_ratio(state: CustomerState, at: float, first_rhythm_days: float) -> float:
    gap, interval = days_since_last_purchase(state, at), own_interval_days(state, first_rhythm_days)
    if interval > 0:
        return gap / interval
    return math.inf if gap > 0 else 0.0
