"""Stepwise covariate modelling (forward inclusion, backward elimination), as PsN's SCM."""

from __future__ import annotations

import copy
import warnings

import pandas as pd
from joblib import Parallel, delayed

from ._compare import likelihood_ratio_test

__all__ = ["stepwise_covariates"]


def _merge(effects):
    """``[(column, parameter), ...]`` -> the estimator's ``covariates`` dict."""
    out = {}
    for col, param in effects:
        out.setdefault(col, []).append(param)
    return out or None


def _fit(estimator, X, effects):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        # a shallow copy, not clone: the (fitted) posterior is shared, never refitted
        return copy.copy(estimator).set_params(covariates=_merge(effects)).fit(X)


def stepwise_covariates(estimator, X, candidates, p_forward=0.05, p_backward=0.01, n_jobs=None):
    """Stepwise covariate search by likelihood-ratio tests.

    Forward: each step fits every remaining candidate added to the current
    model and includes the one with the smallest LRT p-value if it is below
    ``p_forward``; backward: each step removes the included effect with the
    largest p-value (its removal tested against the current model) while it
    is above ``p_backward``. Every fit is a clone of ``estimator`` with the
    same ``random_state``: the individuals' draws are the same for every
    candidate (they are keyed by individual ID and seed), so candidates
    differ by their covariate model only.

    Parameters
    ----------
    estimator : NLMEPopulationEstimator
        The base model (its ``covariates`` are the starting effects) with the
        exact likelihood (``likelihood="auto"`` or ``"importance"``) and a
        fixed integer ``random_state``.
    X : DataFrame
        Individuals table.
    candidates : list of (str, str)
        ``(covariate column, parameter)`` effects to try.
    p_forward, p_backward : float, default=0.05, 0.01
    n_jobs : int, default=None
        Candidate fits in parallel (joblib).

    Returns
    -------
    result : dict
        ``covariates`` (final dict for the estimator), ``estimator`` (its
        fit) and ``history`` (DataFrame: step, direction, effect, ofv,
        delta_ofv, pvalue, accepted).

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme.population import NLMEPopulationEstimator, stepwise_covariates
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> rng = np.random.default_rng(0)
    >>> wt = rng.normal(size=30)
    >>> X, _ = model.simulate(phi=(1 + wt + 0.3 * rng.normal(size=30))[:, None],
    ...                       random_state=1)
    >>> X.insert(0, "WT", wt)
    >>> base = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
    ...                                n_starts=1, random_state=0)
    >>> stepwise_covariates(base, X, [("WT", "theta0")])["covariates"]
    {'WT': ['theta0']}
    """
    for name, p in (("p_forward", p_forward), ("p_backward", p_backward)):
        if not 0.0 < float(p) < 1.0:
            raise ValueError(f"{name} must be in (0, 1), got {p}")
    if not isinstance(estimator.random_state, int):
        raise ValueError(
            "estimator needs an integer random_state, so that every candidate is "
            f"scored on the same draws; got {estimator.random_state!r}"
        )
    start = estimator.covariates or {}
    current = [
        (str(c), p) for c, ps in start.items() for p in ([ps] if isinstance(ps, str) else ps)
    ]
    candidates = [(str(c), str(p)) for c, p in candidates]
    if not candidates or len(set(candidates)) != len(candidates):
        raise ValueError(f"candidates must be unique (column, parameter) pairs, got {candidates}")
    parallel = Parallel(n_jobs=n_jobs)
    fit = _fit(estimator, X, current)
    rows, step = [], 0

    def record(direction, effect, other, test, accepted):
        rows.append(
            {
                "step": step,
                "direction": direction,
                "effect": f"{effect[0]}:{effect[1]}",
                "ofv": -2.0 * other.loglik_,
                "delta_ofv": test["statistic"],
                "pvalue": test["pvalue"],
                "accepted": accepted,
            }
        )

    for direction in ("forward", "backward"):
        while True:
            step += 1
            if direction == "forward":
                trial = [e for e in candidates if e not in current]
                sets = [current + [e] for e in trial]
            else:
                trial = list(current)
                sets = [[f for f in current if f != e] for e in trial]
            if not trial:
                break
            fits = parallel(delayed(_fit)(estimator, X, s) for s in sets)
            if direction == "forward":
                tests = [likelihood_ratio_test(fit, f) for f in fits]
                best = min(range(len(trial)), key=lambda i: tests[i]["pvalue"])
                accept = tests[best]["pvalue"] < p_forward
            else:
                tests = [likelihood_ratio_test(f, fit) for f in fits]
                best = max(range(len(trial)), key=lambda i: tests[i]["pvalue"])
                accept = tests[best]["pvalue"] > p_backward
            for i, e in enumerate(trial):
                record(direction, e, fits[i], tests[i], accept and i == best)
            if not accept:
                break
            if direction == "forward":
                current.append(trial[best])
            else:
                current.remove(trial[best])
            fit = fits[best]
    return {"covariates": _merge(current), "estimator": fit, "history": pd.DataFrame(rows)}
