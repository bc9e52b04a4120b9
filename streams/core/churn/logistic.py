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

    kind: ClassVar[str] = "logistic"
    #: Its features move with every event (days since last seen, the event count), not purchases alone.
    any_event: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not len(self.weights) == len(self.mean) == len(self.scale) == len(FEATURES):
            raise ValueError(f"a logistic model has {len(FEATURES)} weights, means and scales")
        object.__setattr__(self, "_terms", tuple(zip(self.weights, self.mean, self.scale, strict=True)))

    @property
    def label(self) -> str:
        return f"{self.name}@{self.at}"

    def logit(self, state: CustomerState, at: float) -> float:
        z = self.intercept
        for (w, m, s), x in zip(self._terms, features(state, at, self.first_rhythm_days), strict=True):
            z += w * (x - m) / s
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
        non-negative weights on the features time moves it only grows."""
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
        moved = [self._terms[i] for i in MOVED_AT]

        def logit(days: float) -> float:  # only the time-moved features are computed again
            z = fixed
            for (w, m, s), x in zip(moved, moving_features(state, after + days * DAY, rhythm), strict=True):
                z += w * (x - m) / s
            return z

        found = first_reaching(logit, 0.0, target, span=self.horizon_days)
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
