"""Issue 11's acceptance cases: the shipped network with default settings against exact ML.

Each case transforms theophylline (or simulates a study) the way a user's
data differ from the network's training designs: sparse sampling (4 and 6
of 11 samples), doses in mg (Dose x Wt) or ug/kg (x 1000), times in minutes,
repeated doses. sknlme is fitted with defaults (``likelihood``, ``n_samples``,
``bounds`` and ``on_outside`` not given) and compared with the exact
maximum-likelihood fit of the same data by adaptive Gauss-Hermite quadrature
(``bench/aghq_reference.py``, stored in ``tests/data/aghq_reference.json``).
Acceptance: fixed effects within 0.05 (log scale), SDs within 25 % (SDs
below 0.05 at the reference: below 0.1 here), residual SD within 10 %, or an
error naming the individuals. Prints one row per case and where it failed.

Run ``python bench/trust.py [case ...]``.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.frozen import FrozenEstimator

from sknlme.data import IndividualRecords, make_individuals
from sknlme.datasets import load_theophylline, pretrained
from sknlme.population import NLMEPopulationEstimator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aghq_reference import OUT, SPARSE, repeated_doses  # noqa: E402

STRUCT = ("log_ke", "log_ka", "log_Cl")


def transformed(case):
    """The individuals table of a case."""
    if case == "repeated":
        recs = [IndividualRecords(t, y, dt, da) for t, y, dt, da in repeated_doses()]
        return make_individuals(recs)
    X = load_theophylline()
    recs = []
    for ident, rec in zip(X.index, X["records"], strict=True):
        t, y, dt, da = rec.times, rec.values, rec.dose_times, rec.dose_amounts
        if case in SPARSE:
            t, y = t[SPARSE[case]], y[SPARSE[case]]
        elif case == "dose_mg":
            da = da * X.loc[ident, "WT"]
        elif case == "dose_ug":
            da = da * 1000.0
        elif case == "minutes":
            t, dt = t * 60.0, dt * 60.0
        recs.append(IndividualRecords(t, y, dt, da))
    out = X.copy()
    out["records"] = recs
    return out


def check(pop, ref):
    """Deviations from the reference and the failed criteria."""
    fe, sd = pop.fixed_effects_, pop.random_effects_
    fails, row = [], {}
    for p in STRUCT:
        row[p] = fe[p] - ref[p]
        if abs(row[p]) > 0.05:
            fails.append(f"{p} {fe[p]:.3f} vs {ref[p]:.3f}")
        r, s = ref[f"sd_{p}"], sd.get(p, 0.0)
        row[f"sd_{p}"] = s / r - 1 if r >= 0.05 else s
        if (r >= 0.05 and abs(s / r - 1) > 0.25) or (r < 0.05 and s > 0.1):
            fails.append(f"SD({p}) {s:.3f} vs {r:.3f}")
    sigma = float(np.exp(fe["log_sigma"]))
    row["sigma"] = sigma / ref["sigma"] - 1
    if abs(row["sigma"]) > 0.10:
        fails.append(f"sigma {sigma:.3f} vs {ref['sigma']:.3f}")
    row["loglik"] = pop.loglik_ - ref["loglik"]
    return row, fails


def main(cases=None):
    refs = json.loads(OUT.read_text())
    post = FrozenEstimator(pretrained("one-compartment-oral"))
    rows = {}
    for case, ref in refs.items():
        if cases and case not in cases:
            continue
        X = transformed(case)
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                pop = NLMEPopulationEstimator(post, random_state=0).fit(X)
            except ValueError as err:  # an error naming the cause passes
                rows[case] = {"result": f"error: {str(err).splitlines()[0]}"}
                continue
        row, fails = check(pop, ref)
        row["fallback"] = len(pop.fallback_)
        row["seconds"] = time.perf_counter() - t0
        row["warnings"] = len(caught)
        row["result"] = "ok" if not fails else "FAIL: " + "; ".join(fails)
        rows[case] = row
        print(case, row, flush=True)
    table = pd.DataFrame(rows).T
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(3))


if __name__ == "__main__":
    main(sys.argv[1:] or None)
