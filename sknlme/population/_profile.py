"""Profile likelihoods of a fitted population estimator, through pyPESTO."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pypesto
import pypesto.profile
from sklearn.utils.validation import check_is_fitted

from ._multistart import default_optimizer, make_problem

__all__ = ["profile_population"]


def profile_population(
    estimator, params=None, confidence=0.95, optimizer=None, profile_options=None
):
    """Profile likelihoods and likelihood-ratio confidence intervals.

    Each free population parameter is moved along its range while the others
    are re-optimised, on the fit draws (common random numbers, so the profile
    is smooth), starting from the estimate. The interval holds the values
    whose likelihood ratio stays above ``exp(-chi2_1(confidence) / 2)``.

    Parameters
    ----------
    estimator : NLMEPopulationEstimator
        A fitted estimator.
    params : list of str, default=None
        Names among ``estimator.x_names_`` (all free parameters when None).
    confidence : float, default=0.95
        Level of the intervals.
    optimizer : pypesto.optimize.Optimizer, default=None
        Optimiser along the profiles (L-BFGS-B when None).
    profile_options : pypesto.profile.ProfileOptions, default=None
        Step sizes etc.; ``ratio_min`` is lowered below the threshold if needed.

    Returns
    -------
    DataFrame
        Columns ``parameter, estimate, lower, upper``; a bound is ``-inf`` or
        ``inf`` when the profile stays above the threshold up to the
        parameter's bound (an open interval: the parameter is not identifiable
        there, or the bound is too tight). The pyPESTO result is kept as
        ``estimator.profile_result_``.

    Examples
    --------
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior._exact import ExactGaussianPosterior
    >>> from sknlme.population import NLMEPopulationEstimator
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(30, random_state=0)
    >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
    ...                               n_starts=2, random_state=0).fit(X)
    >>> table = pop.profile(["theta0"])
    >>> bool(table.lower[0] < table.estimate[0] < table.upper[0])
    True
    """
    check_is_fitted(estimator, "x_")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    names = list(estimator.x_names_)
    params = names if params is None else [params] if isinstance(params, str) else list(params)
    unknown = [p for p in params if p not in names]
    if unknown:
        raise ValueError(f"cannot profile {unknown}: not free population parameters {names}")
    objective = estimator.objective_
    lb, ub = objective.bounds
    problem = make_problem(objective, names, lb, ub)
    result = pypesto.Result(problem)
    chosen = next(
        r
        for r in estimator.optimize_result_.optimize_result.list
        if r.id == estimator.chosen_start_
    )
    result.optimize_result.append(chosen)  # profiles start at (and are relative to) the estimate
    threshold = pypesto.profile.chi2_quantile_to_ratio(confidence, df=1)
    if profile_options is None:
        profile_options = pypesto.profile.ProfileOptions()
    profile_options.ratio_min = min(profile_options.ratio_min, 0.9 * threshold)
    result = pypesto.profile.parameter_profile(
        problem=problem,
        result=result,
        optimizer=default_optimizer() if optimizer is None else optimizer,
        profile_index=[names.index(p) for p in params],
        profile_options=profile_options,
        progress_bar=False,
    )
    rows = []
    profiles = result.profile_result.list[-1]
    for p in params:
        j = names.index(p)
        prof = profiles[j]
        xs, ratios = prof.x_path[j], prof.ratio_path
        order = np.argsort(xs)
        xs, ratios = xs[order], ratios[order]
        lower, upper = pypesto.profile.calculate_approximate_ci(xs, ratios, threshold)
        if ratios[0] >= threshold:
            lower = -np.inf
        if ratios[-1] >= threshold:
            upper = np.inf
        rows.append((p, float(estimator.x_[j]), float(lower), float(upper)))
    estimator.profile_result_ = result
    return pd.DataFrame(rows, columns=["parameter", "estimate", "lower", "upper"])
