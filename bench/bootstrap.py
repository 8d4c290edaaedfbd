"""Nonparametric bootstrap of the theophylline population fit: replicates per second.

Run ``python -m bench.bootstrap`` (``--n-boot``, ``--n-jobs``, ``--likelihood``).

Fits :class:`~sknlme.NLMEPopulationEstimator` once on the shipped theophylline data
with the shipped ``one-compartment-oral`` network (the amortized likelihood by
default, ``--likelihood importance`` for the exact one), then runs
:func:`sknlme.population.bootstrap` (each replicate re-optimised from the estimate
on the fit's cached draws) and prints the replicates per second, the number of
failed replicates and the percentile and BCa intervals.

Measured on a 2-core machine shared with other jobs (load ~9), amortized
likelihood, K = 100 draws: 3.4 replicates/s before BLAS was limited to one thread
in the refits, 42.6 replicates/s after (n_jobs=1; 25.9 with n_jobs=2 on the loaded
machine). The importance likelihood costs ~25 ms per parameter vector (n K =
24,000 model likelihoods) and ran ~0.1 replicates/s there by central
differences; with each refit by re-centred fixed-proposal surrogates, 2.7
replicates/s (200 replicates, quiet cores, n_jobs=1, 1,849 draws per subject;
4.1 replicates/s with n_jobs=2).
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # see bench/population.py

import pandas as pd  # noqa: E402
from sklearn.frozen import FrozenEstimator  # noqa: E402

from sknlme.datasets import load_theophylline, pretrained  # noqa: E402
from sknlme.population import NLMEPopulationEstimator, bootstrap  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--likelihood", default="amortized", choices=["amortized", "importance"])
    parser.add_argument("--no-bca", action="store_true", help="skip the jackknife fits")
    args = parser.parse_args(argv)
    X = load_theophylline()
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pop = NLMEPopulationEstimator(
            FrozenEstimator(pretrained("one-compartment-oral")),
            likelihood=args.likelihood,
            random_state=0,
        ).fit(X)
    print(
        f"fit: {time.perf_counter() - t0:.1f} s ({args.likelihood}, K = {pop.result_.objective.K})"
    )
    boot = bootstrap(
        pop, n_boot=args.n_boot, random_state=0, n_jobs=args.n_jobs, bca=not args.no_bca
    )
    print(
        f"{args.n_boot} replicates in {boot.seconds:.1f} s: "
        f"{args.n_boot / boot.seconds:.1f} replicates/s (n_jobs={args.n_jobs}), "
        f"{boot.n_failed} failed"
    )
    methods = ["percentile"] if args.no_bca else ["percentile", "bca"]
    with pd.option_context("display.width", 120):
        for method in methods:
            print(f"\n{method} 95% intervals\n{boot.intervals(method).round(3)}")


if __name__ == "__main__":
    main()
