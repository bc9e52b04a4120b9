"""The supervised alternative to BG/NBD: a logistic regression on signals the state already keeps.

Trained on an earlier window of the same history (features at T − H, label: no purchase in
(T − H, T]) and applied at T, so it never sees the labels it is judged on. Features are logs of
recency, frequency, tenure, rhythm, spend and the support, review and return counts, standardised
on the training window; the fit is L2-penalised maximum likelihood (scipy, closed-form gradient).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from streams.churn.baselines import days_since_last_purchase, own_interval_days
from streams.core import CustomerState

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
#: The features that grow while a customer is quiet (time alone moves them). With non-negative weights on
#: these (`fit_logistic(monotone=True)`) the score can only grow with time for a fixed history, as
#: `churn_risk` does, so a threshold crossing would be a root, like BG/NBD's.
GROW_WITH_TIME = (
    "log_days_since_last_purchase",
    "log_days_since_first_purchase",
    "log_gap_over_rhythm",
    "log_days_since_last_seen",
)
#: The penalty on the standardised weights (per customer): small, it only keeps separable data finite.
L2 = 1e-4


def features(state: CustomerState, at: float, first_rhythm_days: float) -> list[float]:
    gap = days_since_last_purchase(state, at)
    rhythm = own_interval_days(state, first_rhythm_days)
    sentiment = state.mean_support_sentiment
    returns = state.counts.get("return", 0) + state.counts.get("refund", 0)
    assert state.first_purchase_at is not None
    return [
        math.log1p(gap),
        math.log1p(state.purchases),
        math.log1p(max(0.0, (at - state.first_purchase_at) / DAY)),
        math.log1p(rhythm),
        math.log1p(gap / rhythm) if rhythm > 0 else math.log1p(gap) + 5.0,
        math.log1p(max(0.0, state.average_spend)),
        math.log1p(max(0.0, (at - state.last_seen) / DAY)),
        math.log1p(sum(state.counts.values())),
        math.log1p(state.support_contacts),
        0.0 if sentiment is None else float(sentiment),
        math.log1p(returns),
        float(state.negative_reviews),
    ]


@dataclass(frozen=True)
class Logistic:
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray  # intercept first
    converged: bool

    def predict(self, X: np.ndarray) -> np.ndarray:
        """P(churned) for each row of raw features."""
        Z = (np.asarray(X, dtype=float) - self.mean) / self.scale
        return expit(self.weights[0] + Z @ self.weights[1:])


def fit_logistic(X, y, monotone: bool = False) -> Logistic:
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    if X.ndim != 2 or len(X) != len(y) or len(X) < 2 or y.min() == y.max():
        raise ValueError("the logistic model needs customers of both outcomes in its training window")
    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    Z = np.hstack([np.ones((len(X), 1)), (X - mean) / scale])
    n = len(y)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        margin = Z @ w
        value = -(y * log_expit(margin) + (1 - y) * log_expit(-margin)).mean() + L2 * float(w[1:] @ w[1:])
        grad = Z.T @ (expit(margin) - y) / n
        grad[1:] += 2 * L2 * w[1:]
        return float(value), grad

    bounds = [(0.0, None) if monotone and name in GROW_WITH_TIME else (None, None) for name in FEATURES]
    found = minimize(
        loss,
        np.zeros(Z.shape[1]),
        jac=True,
        method="L-BFGS-B",
        bounds=[(None, None), *bounds],
        options={"maxiter": 1000},
    )
    return Logistic(mean, scale, found.x, bool(found.success))
