"""Refinement of the amortized end points on the exact (importance) likelihood."""

from __future__ import annotations

import numpy as np

from ._fallback import low_ess_fallback, moment_start
from ._multistart import run_multistart, successful_starts
from ._rescoring import adaptive_rescorer

__all__ = ["refine"]

N_REFINE = 3  # best amortized end points refined
_POLISH_SALT = 0x9E3779B1


def refine(objective, model, study, ok, samples, fallback, seed, multistart):
    """Refine ``ok[:3]`` (and a moment start) on the importance ``objective``.

    Rounds of refinement, each after low-ESS individuals got their Laplace
    proposals (a second round only where the refined estimate finds more),
    then a polish on draws enough for an MC SE of 0.1.

    Returns
    -------
    objective, result, ok, n_failed, fallback

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme.population import ImportanceObjective, PopulationObjective, run_multistart
    >>> from sknlme.population._fallback import FallbackDraws
    >>> from sknlme.population._multistart import successful_starts
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(10, random_state=0)
    >>> study = model.prepare(X)
    >>> draws = ExactGaussianPosterior(model).fit().sample(X, 50, random_state=0)
    >>> base = PopulationObjective(draws, np.zeros((10, 50)), ["theta0"])
    >>> ok, _ = successful_starts(run_multistart(base, base.x_names, *base.bounds,
    ...                                          np.zeros((1, 2))))
    >>> obj = ImportanceObjective(base, model, study, 50, random_state=0)
    >>> out = refine(obj, model, study, ok, draws, FallbackDraws.empty(1), 0, {})
    >>> out[2][0].x.shape
    (2,)
    """
    lb, ub = objective.bounds
    failed = 0
    # plus a start from the individual posteriors' moments, independent of the
    # amortized fit (which can fail where the network does)
    starts = [r.x for r in ok[:N_REFINE]]
    starts.append(moment_start(objective, samples, lb, ub))
    at = ok[0].x
    for rnd in range(2):  # a second round where the refined estimate finds more low ESS
        objective, more = low_ess_fallback(objective, model, study, at, fallback, seed)
        if rnd and more.rows.size == fallback.rows.size:
            break
        fallback = more
        result = run_multistart(
            objective, objective.x_names, lb, ub, np.array(starts), **multistart
        )
        ok, failed_refine = successful_starts(result, stacklevel=5)
        failed += failed_refine
        starts, at = [r.x for r in ok[:N_REFINE]], ok[0].x
    # polish on enough draws that the objective's MC SE is <= 0.1: with 100
    # draws it was 0.2-0.5, so optima moved with the seed along flat directions
    # (sparse theophylline: log ka 0.09 from the exact maximum)
    # (budget 2**16 draws in all: a gradient is 2 n_x + 1 passes over them, and the
    # parameters' MC error falls as 1 / sqrt(N K), so a fixed budget gives a fixed
    # precision at any N; with 2**22, N = 100 took 534 s, with 2**18 54 s, where R
    # nlme takes 2 s; 2**16 still passes the sparse-sampling acceptance tests)
    polish = adaptive_rescorer(objective, at, seed ^ _POLISH_SALT, total_se=0.1, max_draws=2**16)
    if polish.K > objective.K:
        objective = polish
        result = run_multistart(
            objective, objective.x_names, lb, ub, np.array(starts[:1]), **multistart
        )
        ok, failed_refine = successful_starts(result, stacklevel=5)
        failed += failed_refine
    return objective, result, ok, failed, fallback
