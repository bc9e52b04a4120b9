"""BG/NBD: the fit recovers known parameters, and the closed forms agree with integration and simulation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import integrate, stats

from streams.core.churn.bgnbd import Params, churn_risk, crossing, expected_purchases, log_likelihood, p_alive
from streams.core.churn.fit import fit_bgnbd
from streams.core.churn.simulate import simulate

#: CDNOW's published estimates (Fader, Hardie & Lee 2005), a frequent-buyer base, and one with a < 1.
SETS = [Params(0.243, 4.414, 0.793, 2.426), Params(1.0, 20.0, 2.0, 5.0), Params(0.5, 10.0, 0.5, 1.5)]
#: Relative tolerance of each recovered parameter with 20,000 customers (errors seen: under 4 %).
RECOVERY_TOLERANCE = 0.12


@pytest.mark.parametrize("true", SETS, ids=["cdnow", "frequent", "a-below-1"])
def test_fit_recovers_known_parameters(true: Params) -> None:
    T = np.random.default_rng(11).uniform(200.0, 500.0, 20_000)
    x, t_x, T = simulate(true, T, seed=5)
    fit = fit_bgnbd(x, t_x, T)
    assert fit.converged, fit.message
    for name in ("r", "alpha", "a", "b"):
        got, want = getattr(fit.params, name), getattr(true, name)
        assert abs(got - want) / want < RECOVERY_TOLERANCE, (name, got, want)
    # The optimum is at least as likely as the truth (it is the maximum).
    assert fit.log_likelihood >= float(log_likelihood(true, x, t_x, T).sum()) - 1e-6


def _gamma(params: Params):
    return stats.gamma(params.r, scale=1.0 / params.alpha).pdf


def _beta(params: Params):
    return stats.beta(params.a, params.b).pdf


def _integral(f, lo: float, hi: float) -> float:
    value, _ = integrate.quad(f, lo, hi, limit=400, epsabs=0, epsrel=1e-10)
    return value


def _parts(params: Params, x: int, t_x: float, T: float, extra: float = 0.0) -> tuple[float, float]:
    """By numeric integration over λ and p: the likelihood's alive term (seen up to T + extra) and dead term."""
    g, f = _gamma(params), _beta(params)
    lam_alive = _integral(lambda lam: lam**x * math.exp(-lam * (T + extra)) * g(lam), 0, math.inf)
    p_alive_term = _integral(lambda p: (1 - p) ** x * f(p), 0, 1)
    alive = lam_alive * p_alive_term
    if x == 0:
        return alive, 0.0
    lam_dead = _integral(lambda lam: lam**x * math.exp(-lam * t_x) * g(lam), 0, math.inf)
    p_dead = _integral(lambda p: p * (1 - p) ** (x - 1) * f(p), 0, 1)
    return alive, lam_dead * p_dead


POINTS = [(0, 0.0, 100.0), (1, 30.0, 200.0), (4, 150.0, 160.0), (7, 20.0, 300.0)]


def test_log_likelihood_at_the_optimum_matches_numeric_integration() -> None:
    x, t_x, T = simulate(SETS[0], np.random.default_rng(2).uniform(100, 400, 3_000), seed=9)
    fit = fit_bgnbd(x, t_x, T)
    sample = np.random.default_rng(3).choice(len(x), 10, replace=False)
    closed = log_likelihood(fit.params, x[sample], t_x[sample], T[sample])
    numeric = [math.log(sum(_parts(fit.params, int(x[i]), float(t_x[i]), float(T[i])))) for i in sample]
    assert np.allclose(closed, numeric, rtol=0, atol=1e-6)


@pytest.mark.parametrize("point", POINTS)
def test_p_alive_and_churn_risk_match_numeric_integration(point) -> None:
    params, (x, t_x, T), horizon = SETS[0], point, 90.0
    alive, dead = _parts(params, x, t_x, T)
    assert p_alive(params, x, t_x, T) == pytest.approx(alive / (alive + dead), abs=1e-7)
    # No purchase in (T, T+H]: dead, or alive and λ gives no purchase in H (e^{-λH} folds into the alive term).
    quiet_alive, _ = _parts(params, x, t_x, T, extra=horizon)
    want = (quiet_alive + dead) / (alive + dead)
    assert churn_risk(params, x, t_x, T, horizon) == pytest.approx(want, abs=1e-7)


@pytest.mark.parametrize("params", SETS, ids=["cdnow", "frequent", "a-below-1"])
@pytest.mark.parametrize("point", POINTS[2:])  # x = 1 costs ~30 s of integration per set
def test_expected_purchases_match_numeric_integration(params: Params, point) -> None:
    (x, t_x, T), horizon = point, 90.0
    g, f = _gamma(params), _beta(params)
    alive, dead = _parts(params, x, t_x, T)

    # While alive, a customer with rate λ and dropout p buys (1 - e^{-λpH}) / p times in H on average.
    def integrand(lam: float, p: float) -> float:
        return (1 - p) ** x * lam**x * math.exp(-lam * T) * -math.expm1(-lam * p * horizon) / p * g(lam) * f(p)

    value, _ = integrate.dblquad(integrand, 0, 1, 0, np.inf, epsabs=1e-13, epsrel=1e-9)
    want = value / (alive + dead)
    assert expected_purchases(params, x, t_x, T, horizon) == pytest.approx(want, rel=1e-4, abs=1e-6)


def test_closed_forms_match_simulation_for_one_time_buyers() -> None:
    """Customers with no repeat purchase by T = 120 (exactly x = 0, t_x = 0): what they do in the next 90 days."""
    params, T, horizon = SETS[1], 120.0, 90.0
    x, _t_x, _ = simulate(params, np.full(400_000, T + horizon), seed=4)
    # x and t_x up to T+H; the customers with no purchase in (0, T] are those with x = 0 or first repeat after T.
    first_repeat = _first_repeat_time(params, 400_000, seed=4)
    quiet_by_T = first_repeat > T
    later = x[quiet_by_T]
    assert churn_risk(params, 0, 0.0, T, horizon) == pytest.approx(float((later == 0).mean()), abs=0.01)
    assert expected_purchases(params, 0, 0.0, T, horizon) == pytest.approx(float(later.mean()), rel=0.03)


def _first_repeat_time(params: Params, n: int, seed: int) -> np.ndarray:
    """The time of each simulated customer's first repeat purchase, drawn exactly as `simulate` draws it."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(params.r, 1.0 / params.alpha, n)
    rng.beta(params.a, params.b, n)
    return rng.exponential(1.0, n) / lam


@pytest.mark.parametrize("point", [(0, 0.0, 1.0), (3, 40.0, 45.0), (10, 200.0, 210.0), (2, 5.0, 400.0)])
@pytest.mark.parametrize("threshold", [0.5, 0.8, 0.95])
def test_crossing_is_the_first_instant_a_brute_force_search_finds(point, threshold) -> None:
    params, (x, t_x, T0), horizon = SETS[0], point, 90.0
    found = crossing(params, x, t_x, T0, horizon, threshold)
    if churn_risk(params, x, t_x, T0, horizon) >= threshold:
        assert found == T0
        return
    assert found is not None
    step, T, risk = 0.01, T0, []
    while churn_risk(params, x, t_x, T, horizon) < threshold:
        T += step
        assert T < T0 + 1e6
    brute = T
    assert brute - step < found <= brute + 1e-9
    assert churn_risk(params, x, t_x, found, horizon) >= threshold
    assert churn_risk(params, x, t_x, found - 1e-6, horizon) < threshold
    grid = np.linspace(T0, brute, 50)
    risk = [churn_risk(params, x, t_x, float(t), horizon) for t in grid]
    assert all(b >= a for a, b in itertools.pairwise(risk))  # monotone in T


def test_no_crossing_for_a_threshold_of_one() -> None:
    assert crossing(SETS[0], 2, 10.0, 20.0, 90.0, 1.0) is None


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf, math.nan])
def test_parameters_must_be_positive_and_finite(bad: float) -> None:
    with pytest.raises(ValueError, match="positive finite"):
        Params(1.0, bad, 1.0, 1.0)
