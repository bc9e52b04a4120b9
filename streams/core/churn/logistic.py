"""The logistic churn model as the processor uses it: the model file (`kind: logistic`, as
`journey fit --kind logistic` writes it), its score from the state, what each feature contributes,
and the instant the score crosses a threshold.

Plain floats per event (no arrays): the score is twelve features from the state
(`features.py`), standardised and weighted. A file whose weights on the features time moves are
negative is refused: with non-negative ones the score only grows while a customer is quiet, which is
what lets a threshold's crossing be found once as a root in time and become a due time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from streams.core.churn.bgnbd import first_reaching
from streams.core.churn.features import (
    DAY,
    FEATURES,
    GROW_WITH_TIME,
    MOVED_AT,
    features,
    fixed_features,
    moving_features,
    own_interval_days,
)
from streams.core.churn.modelfile import ChurnModelError, FittedOn
from streams.core.state import CustomerState
from streams.yamlfile import validated_yaml


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _finite(values: dict[str, float]) -> dict[str, float]:
    for name, value in values.items():
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number")
    return values


class Trained(_Strict):
    features_at: AwareDatetime = Field(description="Features read here (the cut minus the horizon) ...")
    labels_until: AwareDatetime = Field(description="... labels from purchases up to here (the cut).")
    customers: int = Field(ge=2)
    churned: int = Field(ge=1)


class LogisticQuality(_Strict):
    log_loss: float = Field(ge=0, allow_inf_nan=False)
    converged: bool
    n: int = Field(ge=2)


class LogisticFile(_Strict):
    kind: Literal["logistic"]
    horizon_days: float = Field(gt=0, allow_inf_nan=False)
    first_rhythm_days: float = Field(gt=0, allow_inf_nan=False, description="The interval of one-time buyers.")
    intercept: float = Field(allow_inf_nan=False)
    weights: dict[str, float]
    mean: dict[str, float]
    scale: dict[str, float]
    fitted_on: FittedOn
    trained: Trained
    at: AwareDatetime
    quality: LogisticQuality

    _finite_maps = field_validator("weights", "mean", "scale")(_finite)

    @model_validator(mode="after")
    def _features(self) -> LogisticFile:
        for name in ("weights", "mean", "scale"):
            if list(getattr(self, name)) != list(FEATURES):
                raise ValueError(f"{name} must name exactly these features, in this order: {', '.join(FEATURES)}")
        if any(v <= 0 for v in self.scale.values()):
            raise ValueError("every scale must be positive")
        negative = [name for name in GROW_WITH_TIME if self.weights[name] < 0]
        if negative:
            raise ValueError(
                f"the weights of the features time moves must not be negative ({', '.join(negative)} are): "
                "the score must only grow while a customer is quiet (`journey fit --kind logistic` trains so)"
            )
        return self


def _iso(at) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


#: A Newton step (days) under this ends the search: the next one would be far under a millisecond.
_NEWTON_TOL_DAYS = 1e-8
#: Added to the last iterate, which lies at or just over the root, so that rounding cannot put it under.
_NEWTON_MARGIN_DAYS = 1e-9
#: Past this many days (beyond any instant a datetime holds) a crossing is taken as never.
_NEVER_DAYS = 1e9
_NEWTON_STEPS = 100


class _Bracket:
    """`_newton_days`'s answer when Newton's method cannot be trusted from where it must start."""


_BRACKET = _Bracket()


def _newton_days(logit_and_slope, start: float, pivot: float, weight: float, target: float) -> float | _Bracket | None:
    """The least days >= `start` at which the logit reaches `target`, by Newton's method; None: never.

    `logit_and_slope(days)`: the logit and its derivative in days, past `start` a constant plus a sum of
    non-negative weights (`weight` in all) times log(A + days), every A >= `pivot` > -`start`. Then
    exp(logit / weight) is a constant times a weighted geometric mean of the (A + days): increasing, concave
    and nearly straight. Newton's method on it from below the root climbs to the root and never overshoots it
    (a concave function's tangent meets the target at or before its root), and quickly, as the function is
    nearly straight. In u = log(pivot + days) each term is log(e^u + A - pivot), convex, so a Newton step in u
    bounds the root from above: the search ends when the two bounds are within a fraction of a millisecond,
    and the upper one is returned. Should the logit already be at the target at `start` > 0 (the root lies
    where a clamp still holds) or the iterates not settle (float trouble), `_BRACKET` asks for a bracketed
    search.
    """
    z, slope = logit_and_slope(start)
    if z >= target:
        return start if start == 0.0 else _BRACKET
    if not weight > 0.0:  # no weight on time: the logit stays where it is
        return None if weight == 0.0 and math.isfinite(z) else _BRACKET
    days, hi = start, math.inf
    for _ in range(_NEWTON_STEPS):
        if not slope > 0.0 or not math.isfinite(z):
            return _BRACKET
        short = (target - z) / weight  # log of how far exp(logit / weight) is from its target
        if short > 700.0:  # far past any instant a datetime holds
            return None
        width = pivot + days
        up = (target - z) / (slope * width)
        if up < 700.0:
            hi = min(hi, width * math.exp(up) - pivot)
        days += weight * math.expm1(short) / slope
        if hi - days <= _NEWTON_TOL_DAYS:
            return hi + _NEWTON_MARGIN_DAYS
        if days > _NEVER_DAYS:
            return None
        z, slope = logit_and_slope(days)
    return _BRACKET


@dataclass(frozen=True, slots=True)
class LogisticModel:
    """A loaded logistic model: its weights (standardised features, intercept apart), the horizon it predicts
    churn over, the interval it assumes for one-time buyers, and the name and date its evidence names."""

    intercept: float
    weights: tuple[float, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    horizon_days: float
    first_rhythm_days: float
    name: str
    at: str  # ISO 8601, as in the file
    _terms: tuple[tuple[float, float, float], ...] = field(init=False, repr=False, compare=False)
    _flat: tuple[float, ...] = field(init=False, repr=False, compare=False)  # the terms, one after another

    kind: ClassVar[str] = "logistic"
    #: Its features move with every event (days since last seen, the event count), not purchases alone.
    any_event: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not len(self.weights) == len(self.mean) == len(self.scale) == len(FEATURES):
            raise ValueError(f"a logistic model has {len(FEATURES)} weights, means and scales")
        object.__setattr__(self, "_terms", tuple(zip(self.weights, self.mean, self.scale, strict=True)))
        object.__setattr__(self, "_flat", tuple(v for term in self._terms for v in term))

    @property
    def label(self) -> str:
        return f"{self.name}@{self.at}"

    def logit(self, state: CustomerState, at: float) -> float:
        """The intercept plus each feature's weight × standardised value, added in `FEATURES` order. Spelled out
        term by term (the same operations, in the same order, as a loop over `features`): the rules read it
        several times per event."""
        rhythm = own_interval_days(state, self.first_rhythm_days)
        gap, tenure, over, seen = moving_features(state, at, rhythm)
        purchases, rhythm_log, spend, events, support, sentiment, returns, negative = fixed_features(state, rhythm)
        (
            w0, m0, s0, w1, m1, s1, w2, m2, s2, w3, m3, s3, w4, m4, s4, w5, m5, s5,
            w6, m6, s6, w7, m7, s7, w8, m8, s8, w9, m9, s9, w10, m10, s10, w11, m11, s11,
        ) = self._flat  # fmt: skip
        z = self.intercept
        z += w0 * (gap - m0) / s0
        z += w1 * (purchases - m1) / s1
        z += w2 * (tenure - m2) / s2
        z += w3 * (rhythm_log - m3) / s3
        z += w4 * (over - m4) / s4
        z += w5 * (spend - m5) / s5
        z += w6 * (seen - m6) / s6
        z += w7 * (events - m7) / s7
        z += w8 * (support - m8) / s8
        z += w9 * (sentiment - m9) / s9
        z += w10 * (returns - m10) / s10
        z += w11 * (negative - m11) / s11
        return z

    def probability(self, state: CustomerState, at: float) -> float:
        """P(no purchase within `horizon_days` of `at`) for a customer with a purchase."""
        return _sigmoid(self.logit(state, at))

    def contributions(self, state: CustomerState, at: float) -> list[tuple[str, float, float]]:
        """(feature, value, weight × standardised value) for every feature, the largest contribution first."""
        rows = [
            (name, x, w * (x - m) / s)
            for name, (w, m, s), x in zip(
                FEATURES, self._terms, features(state, at, self.first_rhythm_days), strict=True
            )
        ]
        return sorted(rows, key=lambda row: -abs(row[2]))

    def crossing(self, state: CustomerState, after: float, limit: float) -> float | None:
        """An instant (seconds) near the first one at or after `after` at which the probability reaches `limit`
        with no event in between, or None when it never does. A root in time of the logit: with the file's
        non-negative weights on the features time moves it only grows.

        The rules ask for it at nearly every event (any event moves the score), so it is found by Newton's
        method with the analytic slope (`_newton_days`) rather than a bracketed search; the rules then pin
        the millisecond the comparison flips at by reading the score itself."""
        if limit <= 0.0:
            return after
        if limit >= 1.0:
            return None
        target = math.log(limit / (1.0 - limit))
        rhythm = own_interval_days(state, self.first_rhythm_days)
        still = [term for i, term in enumerate(self._terms) if i not in MOVED_AT]
        fixed = self.intercept + sum(
            w * (x - m) / s for (w, m, s), x in zip(still, fixed_features(state, rhythm), strict=True)
        )
        assert state.first_purchase_at is not None and state.last_purchase_at is not None
        # Each time-moved term is c · log1p(max(0, a + days) / r) - c · m (+ 5c for a zero rhythm), c = w / s
        # (`moving_features`); the days since last purchase, first purchase and last seen at `after` are a.
        (w_gap, m_gap, s_gap), (w_ten, m_ten, s_ten), (w_over, m_over, s_over), (w_seen, m_seen, s_seen) = (
            self._terms[i] for i in MOVED_AT
        )
        gap = (after - state.last_purchase_at) / DAY
        tenure = (after - state.first_purchase_at) / DAY
        seen = (after - state.last_seen) / DAY
        c_gap, c_ten, c_over, c_seen = w_gap / s_gap, w_ten / s_ten, w_over / s_over, w_seen / s_seen
        base = fixed - c_gap * m_gap - c_ten * m_ten - c_over * m_over - c_seen * m_seen
        if rhythm > 0:
            c_over_gap, over_rhythm = 0.0, rhythm
        else:  # log1p(gap) + 5: the gap's own term, once more
            c_over_gap, over_rhythm, base = c_over, 1.0, base + 5.0 * c_over
            c_over = 0.0

        def logit_and_slope(days: float) -> tuple[float, float]:
            """The logit `days` after `after`, and its derivative in days, for days past every clamp."""
            g, t, q = gap + days, tenure + days, seen + days
            over = g / over_rhythm
            z = base + (c_gap + c_over_gap) * math.log1p(g) + c_ten * math.log1p(t)
            z += c_over * math.log1p(over) + c_seen * math.log1p(q)
            slope = (c_gap + c_over_gap) / (1.0 + g) + c_ten / (1.0 + t) + c_over / (over_rhythm + g)
            return z, slope + c_seen / (1.0 + q)

        pivot = min(1.0 + gap, 1.0 + tenure, 1.0 + seen, over_rhythm + gap if c_over else math.inf)
        weight = c_gap + c_over_gap + c_ten + c_over + c_seen
        found = _newton_days(logit_and_slope, max(0.0, -gap, -tenure, -seen), pivot, weight, target)
        if found is _BRACKET:  # the root lies before a clamp lets go (an `after` before the last event): search
            moved = [self._terms[i] for i in MOVED_AT]

            def logit(days: float) -> float:
                z = fixed
                for (w, m, s), x in zip(moved, moving_features(state, after + days * DAY, rhythm), strict=True):
                    z += w * (x - m) / s
                return z

            found = first_reaching(logit, 0.0, target, span=self.horizon_days)
        assert not isinstance(found, _Bracket)
        return None if found is None else after + found * DAY

    def history_key(self, state: CustomerState) -> tuple:
        """What, besides time, the score reads: the same key, the same crossing."""
        counts = state.counts
        return (
            state.first_purchase_at,
            state.last_purchase_at,
            state.purchases,
            state.last_seen,
            sum(counts.values()),
            state.average_spend,
            state.support_contacts,
            state.mean_support_sentiment,
            counts.get("return", 0) + counts.get("refund", 0),
            state.negative_reviews,
        )


def load_logistic(path: str | Path) -> LogisticModel:
    path = Path(path)
    spec = validated_yaml(path, LogisticFile, ChurnModelError, " (kind, horizon_days, weights, mean, scale, ...)")
    return LogisticModel(
        spec.intercept,
        tuple(spec.weights.values()),
        tuple(spec.mean.values()),
        tuple(spec.scale.values()),
        spec.horizon_days,
        spec.first_rhythm_days,
        path.name,
        _iso(spec.at),
    )
