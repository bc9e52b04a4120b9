#!/usr/bin/env python
"""Time of the BG/NBD maximum-likelihood fit (`fit_bgnbd`), with the closed-form gradient and without.

    python benchmarks/bench_churn_fit.py [--sizes 20000,200000] [--turns 5]

For each size, draws that many customers from CDNOW's published parameters (Fader, Hardie & Lee
2005), observed for 200 to 500 days (`streams.core.churn.simulate`), then fits them `--turns` times
each way, the two ways alternating (analytic, numeric, analytic, ...), so both see the same machine
load. "numeric" is the fit as it was before the closed-form gradient (finite differences of
`bgnbd.log_likelihood`). Prints each way's median and minimum wall seconds and median CPU seconds
of this process (steadier on a shared machine), the iterations, and how far apart the two optima
are. It prints figures and never asserts on them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    import numpy as np

    from streams.core.churn.bgnbd import Params
    from streams.core.churn.fit import fit_bgnbd
    from streams.core.churn.simulate import simulate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000,200000", help="customer counts, comma-separated")
    parser.add_argument("--turns", type=int, default=5)
    args = parser.parse_args()
    true = Params(0.243, 4.414, 0.793, 2.426)
    print(f"true parameters: {true}")
    for n in (int(s) for s in args.sizes.split(",")):
        T = np.random.default_rng(11).uniform(200.0, 500.0, n)
        x, t_x, T = simulate(true, T, seed=5)
        seconds: dict[bool, list[float]] = {True: [], False: []}
        cpu: dict[bool, list[float]] = {True: [], False: []}
        fits = {}
        for _ in range(args.turns):
            for analytic in (True, False):
                started, used = time.perf_counter(), time.process_time()
                fits[analytic] = fit_bgnbd(x, t_x, T, gradient=analytic)
                seconds[analytic].append(time.perf_counter() - started)
                cpu[analytic].append(time.process_time() - used)
        for analytic in (True, False):
            fit, s = fits[analytic], seconds[analytic]
            p = fit.params
            print(
                f"{n:>8,} customers  {'analytic' if analytic else 'numeric '} gradient: "
                f"median {statistics.median(s):.3f} s, min {min(s):.3f} s, CPU median "
                f"{statistics.median(cpu[analytic]):.3f} s over {len(s)} turns; "
                f"{fit.iterations} iterations, converged {fit.converged}, "
                f"r={p.r:.4f} alpha={p.alpha:.4f} a={p.a:.4f} b={p.b:.4f} LL={fit.log_likelihood:.3f}"
            )
        gap = max(
            abs(getattr(fits[True].params, k) / getattr(fits[False].params, k) - 1) for k in ("r", "alpha", "a", "b")
        )
        print(
            f"{n:>8,} customers  the two optima differ by at most {gap:.2e} (relative), "
            f"speed-up {statistics.median(seconds[False]) / statistics.median(seconds[True]):.2f}x wall, "
            f"{statistics.median(cpu[False]) / statistics.median(cpu[True]):.2f}x CPU"
        )


if __name__ == "__main__":
    main()
