"""Fitting BG/NBD by maximum likelihood (scipy): the parameters that make a base's histories most likely.

The search runs over the logarithms of the four parameters (bounded, so every step stays in the
positive quadrant), on the mean log-likelihood (its scale does not grow with the base), with the
gradient in closed form: finite differences cost five likelihood evaluations per step where the
closed form costs about one (benchmarks/bench_churn_fit.py measures both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import digamma, gammaln

from streams.core.churn.bgnbd import Params, log_likelihood

#: The search's bounds on each log-parameter: far outside any base's values, inside float range.
_LOG_BOUND = 30.0


@dataclass(frozen=True)
class Fit:
    params: Params
    log_likelihood: float  # the total over the customers
    converged: bool
    n: int  # customers
    iterations: int
    message: str


def mean_log_likelihood_and_gradient(
    theta: np.ndarray,
    x: np.ndarray,
    t_x: np.ndarray,
    T: np.ndarray,
    groups: tuple[np.ndarray, np.ndarray] | None = None,
):
    """The mean log-likelihood at log-parameters `theta` = ln(r, α, a, b) and its gradient in `theta`.

    ln L = A1 + A2 + ln(e^A3 + e^A4) (equation 6 of the paper, in logs); the derivative of the last
    term is each branch's derivative weighted by its share w3, w4 of the sum. The special functions
    (ln Γ, ψ) depend on x alone, which takes few distinct values: they are computed once per value
    (`groups`: `np.unique(x, return_inverse=True)`, computed here when not given).
    """
    r, alpha, a, b = (float(v) for v in np.exp(theta))
    values, where = np.unique(x, return_inverse=True) if groups is None else groups

    def per_x(f, shift: float) -> np.ndarray:
        return f(shift + values)[where]

    some = x > 0
    xs = np.where(some, x, 1.0)
    log_at, log_atx = np.log(alpha + T), np.log(alpha + t_x)
    a1 = per_x(gammaln, r) - gammaln(r) + r * math.log(alpha)
    a2 = per_x(gammaln, b) - gammaln(b) - per_x(gammaln, a + b) + gammaln(a + b)
    a3 = -(r + x) * log_at
    a4 = np.where(some, math.log(a) - np.log(b + xs - 1) - (r + x) * log_atx, -np.inf)
    top = np.logaddexp(a3, a4)
    w3, w4 = np.exp(a3 - top), np.exp(a4 - top)  # w4 = 0 where x = 0
    psi_ab, psi_abx = digamma(a + b), per_x(digamma, a + b)
    d_r = per_x(digamma, r) - digamma(r) + math.log(alpha) - w3 * log_at - w4 * log_atx
    d_alpha = r / alpha - (r + x) * (w3 / (alpha + T) + w4 / (alpha + t_x))
    d_a = psi_ab - psi_abx + w4 / a
    d_b = psi_ab - psi_abx + per_x(digamma, b) - digamma(b) - w4 / (b + xs - 1)
    gradient = np.array([r * d_r.mean(), alpha * d_alpha.mean(), a * d_a.mean(), b * d_b.mean()])
    return float((a1 + a2 + top).mean()), gradient


def fit_bgnbd(x, t_x, T, *, gradient: bool = True) -> Fit:
    """The maximum-likelihood BG/NBD parameters for these histories (x repeat purchases, t_x and T in days).

    `gradient=False` lets the optimiser difference the likelihood numerically instead (for comparison).
    """
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
    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * 4
    groups = np.unique(x, return_inverse=True)

    def with_gradient(theta: np.ndarray) -> tuple[float, np.ndarray]:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            value, grad = mean_log_likelihood_and_gradient(theta, x, t_x, T, groups)
        if not (math.isfinite(value) and np.isfinite(grad).all()):
            return 1e300, np.zeros(4)
        return -value, -grad

    def objective(theta: np.ndarray) -> float:
        with np.errstate(over="ignore", invalid="ignore"):
            params = Params(*(float(v) for v in np.exp(theta)))
            value = -float(log_likelihood(params, x, t_x, T).mean())
        return value if math.isfinite(value) else 1e300

    options = {"maxiter": 500, "ftol": 1e-12, "gtol": 1e-8}
    if gradient:
        found = minimize(with_gradient, start, jac=True, method="L-BFGS-B", bounds=bounds, options=options)
    else:
        found = minimize(objective, start, method="L-BFGS-B", bounds=bounds, options=options)
    params = Params(*(float(v) for v in np.exp(found.x)))
    return Fit(
        params,
        float(log_likelihood(params, x, t_x, T).sum()),
        bool(found.success),
        n,
        int(found.nit),
        str(found.message),
    )
