"""The supervised alternative to BG/NBD: a logistic regression on signals the state already keeps.

Trained on an earlier window of the same history (features at T − H, label: no purchase in
(T − H, T]) and applied at T, so it never sees the labels it is judged on. Features are logs of
recency, frequency, tenure, rhythm, spend and the support, review and return counts, standardised
on the training window (one definition, `streams/core/churn/features.py`, which the live
`churn_risk` reads too); the fit is L2-penalised maximum likelihood (scipy, closed-form gradient).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from streams.core.churn.features import FEATURES, GROW_WITH_TIME, features

__all__ = ["FEATURES", "GROW_WITH_TIME", "Logistic", "features", "fit_logistic"]

#: The penalty on the standardised weights (per customer): small, it only keeps separable data finite.
L2 = 1e-4


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
