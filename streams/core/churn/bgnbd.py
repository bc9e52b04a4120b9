"""BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way"): closed forms.

A customer buys at rate λ while alive and may drop out, with probability p, right after each
purchase; λ ~ Gamma(r, α) and p ~ Beta(a, b) across customers. What the model needs of one
customer is three numbers the state already keeps (O(1), whatever the history's length): `x`, the
repeat purchases (purchases - 1); `t_x`, the time from the first purchase to the last; `T`, the
time from the first purchase to now. Times are in days.

Why these forms: given the history and that the customer is alive at T, λ's posterior is
Gamma(r + x, α + T), independent of p; and while alive a customer with no purchase cannot drop
out, so P(no purchase in (T, T + H] | alive, λ) = exp(-λH). Hence

    churn_risk = P(no purchase in (T, T + H]) = 1 - P(alive) (1 - ((α + T) / (α + T + H))^(r + x))

which, for a fixed history, grows with T (both P(alive) and the bracket shrink): the instant it
crosses a threshold is a root (`crossing`), found in a handful of evaluations.

The scalar functions use `math` only (they run per event in the core); `log_likelihood` is
vectorised (numpy) for the fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.special import gammaln, hyp2f1


@dataclass(frozen=True, slots=True)
class Params:
    """λ ~ Gamma(shape r, rate alpha) (alpha in days), p ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float

    def __post_init__(self) -> None:
        for name in ("r", "alpha", "a", "b"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"BG/NBD parameter {name} must be a positive finite number, not {value!r}")


def log_likelihood(params: Params, x, t_x, T) -> np.ndarray:
    """Each customer's log-likelihood ln L(r, α, a, b | x, t_x, T) (equation 6 of the paper, in logs)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    a1 = gammaln(r + x) - gammaln(r) + r * math.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    some = x > 0
    xs = np.where(some, x, 1.0)  # keeps log(b + x - 1) finite where it is not used
    a4 = np.where(some, math.log(a) - np.log(b + xs - 1) - (r + x) * np.log(alpha + t_x), -np.inf)
    return a1 + a2 + np.logaddexp(a3, a4)


def _log_odds_dead(params: Params, x: float, t_x: float, T: float) -> float:
    """ln(P(dead) / P(alive)) given the history (only defined for x > 0)."""
    return (
        math.log(params.a)
        - math.log(params.b + x - 1)
        + (params.r + x) * (math.log(params.alpha + T) - math.log(params.alpha + t_x))
    )


def p_alive(params: Params, x: float, t_x: float, T: float) -> float:
    """P(still active at T | x, t_x, T). With no repeat purchase it is 1: BG/NBD drops out only after a purchase."""
    if x <= 0:
        return 1.0
    d = _log_odds_dead(params, x, t_x, T)
    if d > 0:
        e = math.exp(-d)
        return e / (1.0 + e)
    return 1.0 / (1.0 + math.exp(d))


def _buy_if_alive(params: Params, x: float, T: float, horizon: float) -> float:
    """P(at least one purchase in (T, T + horizon] | alive at T) = 1 - ((α+T)/(α+T+H))^(r+x)."""
    return -math.expm1(-(params.r + x) * math.log1p(horizon / (params.alpha + T)))


def churn_risk(params: Params, x: float, t_x: float, T: float, horizon: float) -> float:
    """P(no purchase in (T, T + horizon]): dead, or alive and buying nothing in the horizon.

    `p_alive` × `_buy_if_alive`, spelled out in one function: the core reads it per event.
    """
    k, at = params.r + x, params.alpha + T
    buy = -math.expm1(-k * math.log1p(horizon / at))
    if x <= 0:
        return 1.0 - buy
    d = math.log(params.a / (params.b + x - 1)) + k * math.log(at / (params.alpha + t_x))
    alive = math.exp(-d) / (1.0 + math.exp(-d)) if d > 0 else 1.0 / (1.0 + math.exp(d))
    return 1.0 - alive * buy


def _risk_and_slope(params: Params, x: float, t_x: float, T: float, horizon: float) -> tuple[float, float]:
    """churn_risk at T and its derivative in T (days), for Newton's method in `crossing`."""
    k, at = params.r + x, params.alpha + T
    stay = math.exp(-k * math.log1p(horizon / at))  # ((α+T)/(α+T+H))^k
    buy = 1.0 - stay
    buy_slope = -k * stay * horizon / (at * (at + horizon))
    if x <= 0:
        return stay, -buy_slope
    d = math.log(params.a / (params.b + x - 1)) + k * math.log(at / (params.alpha + t_x))
    alive = math.exp(-d) / (1.0 + math.exp(-d)) if d > 0 else 1.0 / (1.0 + math.exp(d))
    alive_slope = -alive * (1.0 - alive) * k / at
    return 1.0 - alive * buy, -(alive_slope * buy + alive * buy_slope)


def expected_purchases(params: Params, x: float, t_x: float, T: float, horizon: float) -> float:
    """E[purchases in (T, T + horizon] | x, t_x, T] (equation 10 of the paper)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    if abs(a - 1.0) < 1e-9:  # the closed form's removable singularity at a = 1
        a += 1e-7
    z = horizon / (alpha + T + horizon)
    stay = math.exp(-(r + x) * math.log1p(horizon / (alpha + T)))
    bracket = 1.0 - stay * float(hyp2f1(r + x, b + x, a + b + x - 1, z))
    return max(0.0, (a + b + x - 1) / (a - 1) * bracket * p_alive(params, x, t_x, T))


def first_reaching(score, T_from: float, threshold: float, *, rising: bool = True, span: float = 1.0) -> float | None:
    """The least T >= T_from at which a score monotone in T has reached `threshold` (None: never).

    `score(T)`: rising (churn risk, towards 1) or falling (P(alive), expected purchases, towards 0); reached
    means score >= threshold when rising, score <= threshold when falling. The crossing is bracketed by
    doubling `span` (days; a first guess of the distance) and found by Brent's method (`xtol` about a millisecond); the answer is then moved
    up, if need be, so that the score at it does reach the threshold.
    """

    def gap(T: float) -> float:
        return score(T) - threshold if rising else threshold - score(T)

    if gap(T_from) >= 0:
        return T_from
    span = max(1.0, span)
    hi = T_from + span
    while (high := gap(hi)) < 0:
        span *= 2.0
        hi = T_from + span
        if span > 1e9:  # days: past any instant a datetime holds
            return None
    if not math.isfinite(high):  # a score the closed form cannot give here (overflow): no instant to name
        return None
    root = float(brentq(gap, T_from, hi, xtol=1e-8, rtol=1e-12, maxiter=100))
    step = 1e-8
    while gap(root) < 0:
        root += step
        step *= 2.0
    return root


def crossing(params: Params, x: float, t_x: float, T_from: float, horizon: float, threshold: float) -> float | None:
    """The least T >= T_from at which churn_risk(T) >= threshold (None: never, i.e. threshold >= 1).

    churn_risk is increasing in T and tends to 1. Newton's method with its derivative, kept inside a bracket
    (bisection when a step would leave it), converges in a few evaluations: the core computes this for a
    customer on every purchase. The answer is moved up, if need be, so that the risk at it does reach the
    threshold.
    """
    if threshold >= 1.0:
        return None
    risk, slope = _risk_and_slope(params, x, t_x, T_from, horizon)
    if risk >= threshold:
        return T_from
    lo, span = T_from, max(1.0, horizon, T_from - t_x)
    hi = T_from + span
    while churn_risk(params, x, t_x, hi, horizon) < threshold:
        lo, span = hi, span * 2.0
        hi = T_from + span
        if span > 1e9:  # days: past any instant a datetime holds
            return None
    T = lo
    for _ in range(100):
        if risk < threshold:
            lo = T
        else:
            hi = T
        step = (threshold - risk) / slope if slope > 0 else math.inf
        nxt = T + step
        if not lo < nxt < hi:
            nxt = 0.5 * (lo + hi)
        if abs(nxt - T) < 1e-9 or hi - lo < 1e-9:
            T = nxt
            break
        T = nxt
        risk, slope = _risk_and_slope(params, x, t_x, T, horizon)
    step = 1e-9
    while churn_risk(params, x, t_x, T, horizon) < threshold:
        T += step
        step *= 2.0
    return T
