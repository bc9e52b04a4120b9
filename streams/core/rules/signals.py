"""The signals a rule may read: named values derived from a customer's state at an instant.

A rule never reads the state directly, only these names, so the rules file is checked
against this catalogue at start-up and a rule cannot reach state the processor does not
keep. Signals that change with time alone say how: an *age* grows from an anchor time
(`days_since_*`), a *window* count drops when its oldest entry leaves the window. That is
what lets the core compute when a customer next needs looking at without any event.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from schemas import Touchpoint
from streams.core.churn import bgnbd
from streams.core.state import CustomerState

if TYPE_CHECKING:
    from streams.core.churn.modelfile import ChurnModel

DAY = 86_400.0
HOUR = 3_600.0

#: The mark of time passing with no event: only ages and windows move (`Signal.on`).
TIME = "@time"
#: Sentiment at or below this counts a contact as negative.
NEGATIVE_SENTIMENT = -0.3
#: A wait at least this long counts as a long wait.
LONG_WAIT_S = 1_800.0


@dataclass(frozen=True, slots=True)
class Context:
    """Rules-file settings the signals need (home market, default purchase rhythm, churn horizon), and the
    churn model the churn signals score with (None: they have no value)."""

    home_countries: frozenset[str]
    home_languages: frozenset[str]
    first_rhythm_days: float
    churn_horizon_days: float = 90.0
    churn: ChurnModel | None = None


@dataclass(frozen=True, slots=True)
class Curve:
    """How a model score moves with time alone: monotone in the customer's age for a fixed history.

    `reach(state, ctx, after, limit)`: an instant after `after` at which the score has passed `limit`
    (rising: reached it; falling: come down to it), within a few milliseconds of the first one, or None
    when it never does. The rules (`compiled.py`) take it from there to the exact instant their
    comparison flips, as they turn an age's threshold into a due time.
    """

    rising: bool
    reach: Callable[[CustomerState, Context, float, float], float | None]


@dataclass(frozen=True, slots=True)
class Signal:
    name: str
    kind: str  # "number" or "bool"
    doc: str
    read: Callable[[CustomerState, float, Context], Any]
    #: For an age in days: the anchor time it grows from (None while there is none).
    anchor: Callable[[CustomerState], float | None] | None = None
    #: For a window count: the instants at which an entry leaves the window.
    expiries: Callable[[CustomerState], list[float]] | None = None
    #: What in an event can change this signal's value: touchpoint kinds, or the marks
    #: "@pre_buy" (an event before the first purchase), "@locale" (a country or language on the
    #: event), "@channel" (a channel new to the customer); and "@time" for an age or a window,
    #: which time alone changes. None: anything.
    on: frozenset[str] | None = None
    #: For a model score that time alone moves (the churn signals): how (None for every other signal).
    curve: Curve | None = None


CATALOGUE: dict[str, Signal] = {}


def _add(name: str, kind: str, doc: str, read, anchor=None, expiries=None) -> None:
    CATALOGUE[name] = Signal(name, kind, doc, read, anchor, expiries)


def _age(name: str, doc: str, anchor: Callable[[CustomerState], float | None]) -> None:
    def read(state: CustomerState, now: float, ctx: Context) -> float | None:
        at = anchor(state)
        # Rounded (as thresholds are, `compiled.PRECISION`) so that at exactly `anchor + n days` the
        # age is exactly n, float noise aside: a due time must satisfy the comparison it came from.
        return None if at is None else round((now - at) / DAY, 9)

    _add(name, "number", doc, read, anchor=anchor)


def _window(name: str, doc: str, days: float, keep: Callable[[list], bool]) -> None:
    span = days * DAY

    def read(state: CustomerState, now: float, ctx: Context) -> int:
        return sum(1 for entry in state.support_log if now - span < entry[0] <= now and keep(entry))

    def expiries(state: CustomerState) -> list[float]:
        return [entry[0] + span for entry in state.support_log if keep(entry)]

    _add(name, "number", f"{doc} in the last {days:g} days", read, expiries=expiries)


def _rhythm(state: CustomerState, ctx: Context) -> float:
    interval = state.mean_purchase_interval
    # None until a second purchase; 0.0 (purchases at one instant) is a rhythm like any other,
    # which the rules' floors then decide, not "no rhythm yet".
    return interval / DAY if interval is not None else ctx.first_rhythm_days


def _follow_ups(state: CustomerState, now: float) -> int:
    """Contacts in the last 7 days that came within 24 h of the previous contact."""
    times = [entry[0] for entry in state.support_log if entry[0] <= now]
    return sum(1 for a, b in itertools.pairwise(times) if b - a <= DAY and now - b < 7 * DAY)


def _international(state: CustomerState, ctx: Context) -> bool:
    if state.country is not None and ctx.home_countries and state.country.upper() not in ctx.home_countries:
        return True
    if state.language is not None and ctx.home_languages:
        return state.language.split("-")[0].lower() not in ctx.home_languages
    return False


# --- activity and purchases
_add("events", "number", "events seen", lambda s, n, c: sum(s.counts.values()))
_add("purchases", "number", "paid purchases", lambda s, n, c: s.purchases)
_add("total_spend", "number", "sum of order amounts", lambda s, n, c: round(s.total_spend, 2))
_add("average_spend", "number", "mean order amount", lambda s, n, c: round(s.average_spend, 2))
_add("coupon_share", "number", "share of orders with a coupon or discount", lambda s, n, c: round(s.coupon_share, 3))
_add(
    "purchase_rhythm_days",
    "number",
    "mean days between purchases (the rules' first_rhythm_days until two)",
    lambda s, n, c: _rhythm(s, c),
)
_add(
    "hours_first_view_to_purchase",
    "number",
    "hours from the first product or catalogue view to the first purchase",
    lambda s, n, c: (
        None
        if s.first_view_at is None or s.first_purchase_at is None or s.first_purchase_at < s.first_view_at
        else round((s.first_purchase_at - s.first_view_at) / HOUR, 3)
    ),
)
_add("pre_buy_events", "number", "events before the first purchase", lambda s, n, c: s.pre_buy_events)
_add("pre_buy_reviews", "number", "reviews read before the first purchase", lambda s, n, c: s.pre_buy_reviews)
_add(
    "pre_buy_cart_churn",
    "number",
    "cart adds and removes before the first purchase",
    lambda s, n, c: s.pre_buy_cart_churn,
)
_add("channels_used", "number", "distinct channels the customer used", lambda s, n, c: len(s.channels))
_add(
    "free_plan",
    "bool",
    "signed up for a free plan or trial",
    lambda s, n, c: bool(s.counts.get("free_signup", 0) or s.counts.get("trial_start", 0)),
)
_add("returns", "number", "returns and refunds", lambda s, n, c: s.counts.get("return", 0) + s.counts.get("refund", 0))
_add("international", "bool", "country or language outside the home market", lambda s, n, c: _international(s, c))
for _kind in Touchpoint:
    _add(f"count_{_kind.value}", "number", f"{_kind.value} events", lambda s, n, c, k=_kind.value: s.counts.get(k, 0))

# --- ages (grow with time alone)
_age("days_since_last_purchase", "days since the last purchase", lambda s: s.last_purchase_at)
_age("days_since_first_purchase", "days since the first purchase (tenure)", lambda s: s.first_purchase_at)
_age("days_since_last_seen", "days since the latest event", lambda s: s.last_seen)
_age("days_since_complaint", "days since the latest complaint", lambda s: s.last_complaint_at)
_age(
    "days_since_negative_review",
    "days since the latest negative review (rating <= 2)",
    lambda s: s.last_negative_review_at,
)
_age(
    "days_since_positive_review",
    "days since the latest positive review (rating >= 4)",
    lambda s: s.last_positive_review_at,
)
_age("days_since_change_request", "days since the latest change request", lambda s: s.last_change_request_at)

# --- support contacts
_add(
    "support_contacts", "number", "support tickets, complaints and pre-sales chats", lambda s, n, c: s.support_contacts
)
_add("howto_contacts", "number", "support contacts about how to use the product", lambda s, n, c: s.howto_contacts)
_add(
    "mean_support_sentiment",
    "number",
    "mean sentiment of contacts, surveys and reviews (-1..1)",
    lambda s, n, c: None if s.mean_support_sentiment is None else round(s.mean_support_sentiment, 3),
)
_window("support_contacts_7d", "support contacts", 7, lambda e: True)
_window("support_contacts_30d", "support contacts", 30, lambda e: True)
_window("negative_contacts_14d", "support contacts with negative sentiment", 14, lambda e: e[1] <= NEGATIVE_SENTIMENT)
_window("long_waits_14d", "support contacts that waited 30 minutes or more", 14, lambda e: e[2] >= LONG_WAIT_S)
_add(
    "follow_ups_7d",
    "number",
    "contacts in the last 7 days within 24 h of the previous one",
    lambda s, n, c: _follow_ups(s, n),
    expiries=lambda s: [e[0] + 7 * DAY for e in s.support_log],
)

# --- scores and reviews
for _score in ("csat", "nps", "ces", "rating"):
    _add(f"latest_{_score}", "number", f"the latest {_score.upper()} given", lambda s, n, c, k=_score: s.scores.get(k))
_add("surveys", "number", "survey answers", lambda s, n, c: s.surveys)
_add(
    "neutral_survey_share",
    "number",
    "share of survey answers that were neutral",
    lambda s, n, c: round(s.neutral_surveys / s.surveys, 3) if s.surveys else None,
)
_add("negative_reviews", "number", "reviews rated 2 stars or less", lambda s, n, c: s.negative_reviews)


# --- predicted churn (BG/NBD, `streams/core/churn/bgnbd.py`): x repeat purchases, t_x from the first
# purchase to the last, T from the first purchase to now, in days. No model or no purchase: no value.
def _churn_inputs(state: CustomerState, now: float, ctx: Context) -> tuple[float, float, float] | None:
    first, last = state.first_purchase_at, state.last_purchase_at
    if ctx.churn is None or first is None or last is None or state.purchases < 1:
        return None
    t_x = (last - first) / DAY
    return float(state.purchases - 1), t_x, max(t_x, (now - first) / DAY)


def churn_inputs(state: CustomerState, now: float, ctx: Context) -> dict[str, float] | None:
    """The model's inputs for this customer at `now` (for `journey explain` and the profile), or None."""
    inputs = _churn_inputs(state, now, ctx)
    if inputs is None:
        return None
    x, t_x, T = inputs
    return {"x": x, "t_x": round(t_x, 6), "T": round(T, 6), "horizon_days": ctx.churn_horizon_days}


def _churn_signal(name: str, doc: str, score: Callable[..., float], rising: bool, needs_repeat: bool) -> None:
    """`score(params, x, t_x, T, horizon)`; `needs_repeat`: constant until a repeat purchase (P(alive) is 1)."""

    def read(state: CustomerState, now: float, ctx: Context) -> float | None:
        inputs = _churn_inputs(state, now, ctx)
        if inputs is None:
            return None
        assert ctx.churn is not None  # `_churn_inputs` gives none without a model
        return score(ctx.churn.params, *inputs, ctx.churn_horizon_days)

    def reach(state: CustomerState, ctx: Context, after: float, limit: float) -> float | None:
        inputs = _churn_inputs(state, after, ctx)
        if inputs is None or (needs_repeat and inputs[0] <= 0):
            return None
        assert ctx.churn is not None and state.first_purchase_at is not None
        x, t_x, T = inputs
        params, horizon = ctx.churn.params, ctx.churn_horizon_days
        if score is bgnbd.churn_risk:  # the one the shipped rules use: a faster search of its own
            found = bgnbd.crossing(params, x, t_x, T, horizon, limit)
            return None if found is None else state.first_purchase_at + found * DAY
        found = bgnbd.first_reaching(
            lambda at: score(params, x, t_x, at, horizon), T, limit, rising=rising, span=max(horizon, T - t_x)
        )
        return None if found is None else state.first_purchase_at + found * DAY

    signal = Signal(name, "number", doc, read, curve=Curve(rising, reach))
    CATALOGUE[name] = signal


_churn_signal(
    "p_alive",
    "churn model: probability the customer is still active (1 until a repeat purchase)",
    lambda p, x, t_x, T, h: bgnbd.p_alive(p, x, t_x, T),
    rising=False,
    needs_repeat=True,
)
_churn_signal(
    "churn_risk",
    "churn model: probability of no purchase within the rules' churn_horizon_days",
    bgnbd.churn_risk,
    rising=True,
    needs_repeat=False,
)
_churn_signal(
    "expected_purchases",
    "churn model: expected purchases within the rules' churn_horizon_days",
    bgnbd.expected_purchases,
    rising=False,
    needs_repeat=False,
)


# --- which events can change which signal: a rule none of whose signals an event can change
# keeps its answer, so the core skips it (time's changes come through due times instead).
_SUPPORT = {"support_ticket", "complaint", "presales_chat"}
_SCORED = {"survey_response", "review_written"}
_PURCHASE = {"purchase"}
_ON: dict[str, set[str]] = {
    "pre_buy_events": {"@pre_buy"},
    "channels_used": {"@channel"},
    "international": {"@locale"},
    "purchases": _PURCHASE,
    "total_spend": _PURCHASE,
    "average_spend": _PURCHASE,
    "coupon_share": _PURCHASE,
    "purchase_rhythm_days": _PURCHASE,
    "days_since_last_purchase": _PURCHASE,
    "days_since_first_purchase": _PURCHASE,
    "hours_first_view_to_purchase": _PURCHASE | {"product_view", "catalog_view"},
    "pre_buy_reviews": {"review_read"},
    "pre_buy_cart_churn": {"add_to_cart", "remove_from_cart"},
    "free_plan": {"free_signup", "trial_start"},
    "returns": {"return", "refund"},
    "days_since_complaint": {"complaint"},
    "days_since_change_request": {"change_request"},
    "days_since_negative_review": {"review_written"},
    "days_since_positive_review": {"review_written"},
    "negative_reviews": {"review_written"},
    "support_contacts": _SUPPORT,
    "howto_contacts": _SUPPORT,
    "support_contacts_7d": _SUPPORT,
    "support_contacts_30d": _SUPPORT,
    "negative_contacts_14d": _SUPPORT,
    "long_waits_14d": _SUPPORT,
    "follow_ups_7d": _SUPPORT,
    "mean_support_sentiment": _SUPPORT | _SCORED | {"change_request"},
    "latest_csat": _SCORED,
    "latest_nps": _SCORED,
    "latest_ces": _SCORED,
    "latest_rating": _SCORED,
    "surveys": {"survey_response"},
    "neutral_survey_share": {"survey_response"},
    "p_alive": _PURCHASE,
    "churn_risk": _PURCHASE,
    "expected_purchases": _PURCHASE,
}
_ON.update({f"count_{kind.value}": {kind.value} for kind in Touchpoint})
for _name, _kinds in _ON.items():
    _signal = CATALOGUE[_name]
    if _signal.anchor is not None or _signal.expiries is not None or _signal.curve is not None:
        _kinds = _kinds | {TIME}
    CATALOGUE[_name] = Signal(
        _signal.name,
        _signal.kind,
        _signal.doc,
        _signal.read,
        _signal.anchor,
        _signal.expiries,
        frozenset(_kinds),
        _signal.curve,
    )
