"""Fitting BG/NBD by maximum likelihood (scipy): the parameters that make a base's histories most likely.

The search runs over the logarithms of the four parameters, so every step stays in the positive
quadrant without bounds, on the mean log-likelihood (its scale does not grow with the base).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from streams.core.churn.bgnbd import Params, log_likelihood


@dataclass(frozen=True)
class Fit:
    params: Params
    log_likelihood: float  # the total over the customers
    converged: bool
    n: int  # customers
    iterations: int
    message: str


def fit_bgnbd(x, t_x, T) -> Fit:
    """The maximum-likelihood BG/NBD parameters for these histories (x repeat purchases, t_x and T in days)."""
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    if not (x.shape == t_x.shape == T.shape) or x.ndim != 1 or len(x) < 2:
        raise ValueError("fit_bgnbd needs at least two customers and equal-length x, t_x, T")
    if (x < 0).any() or (t_x < 0).any() or (t_x > T).any() or not np.isfinite(T).all():
        raise ValueError("fit_bgnbd needs 0 <= t_x <= T and x >= 0")
    if not (x > 0).any():
        raise ValueError("no customer has a repeat purchase: the model cannot be fitted")
    n = len(x)
    rate = max(float(x.sum()) / max(float(T.sum()), 1e-9), 1e-9)  # purchases per day, to start from
    start = np.log([1.0, 1.0 / rate, 1.0, 1.0])

    def objective(theta: np.ndarray) -> float:
        with np.errstate(over="ignore", invalid="ignore"):
            try:
                params = Params(*(float(v) for v in np.exp(np.clip(theta, -30, 30))))
            except ValueError:
                return math.inf
            value = -float(log_likelihood(params, x, t_x, T).mean())
        return value if math.isfinite(value) else 1e300

    found = minimize(objective, start, method="L-BFGS-B", options={"maxiter": 500, "ftol": 1e-12, "gtol": 1e-8})
    params = Params(*(float(v) for v in np.exp(found.x)))
    return Fit(
        params,
        float(log_likelihood(params, x, t_x, T).sum()),
        bool(found.success),
        n,
        int(found.nit),
        str(found.message),
    )
