"""Histories drawn from a known BG/NBD model: the truth the tests fit back and the benchmark times."""

from __future__ import annotations

import numpy as np

from streams.core.churn.bgnbd import Params


def simulate(params: Params, T, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, t_x, T) of customers first buying at 0 and observed up to T (days), as BG/NBD draws them."""
    rng = np.random.default_rng(seed)
    T = np.asarray(T, dtype=float)
    n = len(T)
    lam = rng.gamma(params.r, 1.0 / params.alpha, n)
    p = rng.beta(params.a, params.b, n)
    x, t_x, t = np.zeros(n), np.zeros(n), np.zeros(n)
    alive = np.ones(n, dtype=bool)
    while alive.any():
        idx = np.flatnonzero(alive)
        t[idx] += rng.exponential(1.0, len(idx)) / lam[idx]
        bought = t[idx] <= T[idx]
        alive[idx[~bought]] = False
        got = idx[bought]
        x[got] += 1
        t_x[got] = t[got]
        alive[got[rng.random(len(got)) < p[got]]] = False  # drops out right after this purchase
    return x, t_x, T
