"""Lifecycle rules: which one lifecycle type a customer has at a given instant.

Precedence (first that holds wins): prospect (no paid purchase yet) → at-risk (quiet for
longer than their rhythm allows) → loyal (enough purchases) → new. A purchase moves an
at-risk customer straight back to loyal or new, because it resets the quiet time.
"""

from __future__ import annotations

from datetime import UTC, datetime

from schemas import Reason
from streams.core.state import CustomerState
from streams.settings import DAY, Thresholds

PROSPECT = "prospect"
NEW = "new"
LOYAL = "loyal"
AT_RISK = "at_risk"

#: Types whose customers are watched for going quiet.
WATCHED_FOR_INACTIVITY = frozenset({NEW, LOYAL})


def iso(ts: float) -> str:
    """Epoch seconds as an ISO-8601 UTC instant, as used in reasons and causes."""
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def quiet_period(state: CustomerState, th: Thresholds) -> float:
    """Seconds without a purchase after which a buyer is at risk: a multiple of their own rhythm, with a floor."""
    rhythm = state.mean_purchase_interval or th.first_rhythm_days * DAY
    return max(th.at_risk_floor_days * DAY, th.at_risk_rhythm_multiple * rhythm)


def at_risk_due(state: CustomerState, th: Thresholds) -> float | None:
    """The instant this customer becomes at risk if nothing is bought before it."""
    if state.last_purchase_at is None:
        return None
    return state.last_purchase_at + quiet_period(state, th)


def lifecycle_type(state: CustomerState, now: float, th: Thresholds) -> str:
    """The lifecycle type at `now` (the cheap check made on every event; `classify` explains it)."""
    if state.purchases == 0 or state.last_purchase_at is None:
        return PROSPECT
    if now >= state.last_purchase_at + quiet_period(state, th):
        return AT_RISK
    return LOYAL if state.purchases >= th.loyal_min_purchases else NEW


def classify(state: CustomerState, now: float, th: Thresholds) -> tuple[str, Reason]:
    """The lifecycle type at `now`, with the rule that decided it and its evidence."""
    if state.purchases == 0 or state.last_purchase_at is None:
        return PROSPECT, Reason(
            rule="lifecycle.prospect",
            evidence={"purchases": 0, "events_seen": sum(state.counts.values())},
        )
    quiet = quiet_period(state, th)
    since_purchase = now - state.last_purchase_at
    if now >= state.last_purchase_at + quiet:  # the same sum as at_risk_due, so a sweep at the due time fires
        rhythm = state.mean_purchase_interval
        return AT_RISK, Reason(
            rule="lifecycle.at_risk",
            evidence={
                "last_purchase_at": iso(state.last_purchase_at),
                "days_without_purchase": round(since_purchase / DAY, 2),
                "threshold_days": round(quiet / DAY, 2),
                "rhythm_days": round(rhythm / DAY, 2) if rhythm else None,
                "rhythm_multiple": th.at_risk_rhythm_multiple,
                "floor_days": th.at_risk_floor_days,
            },
        )
    if state.purchases >= th.loyal_min_purchases:
        return LOYAL, Reason(
            rule="lifecycle.loyal",
            evidence={
                "purchases": state.purchases,
                "min_purchases": th.loyal_min_purchases,
                "days_without_purchase": round(since_purchase / DAY, 2),
                "threshold_days": round(quiet / DAY, 2),
            },
        )
    return NEW, Reason(
        rule="lifecycle.new",
        evidence={
            "purchases": state.purchases,
            "min_purchases_for_loyal": th.loyal_min_purchases,
            "total_spend": round(state.total_spend, 2),
        },
    )
