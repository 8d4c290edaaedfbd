"""Profile likelihoods of a population fit, through pyPESTO."""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pypesto
import pypesto.profile

from ._multistart import default_optimizer, make_problem
from ._recentred import RecentredObjective, RecentringOptimizer
from ._rescoring import mc_standard_errors

__all__ = ["PopulationProfile", "profile_fit", "profile_intervals"]

# Profile optimisations stop once an L-BFGS-B iteration gains less than about this much
# in the objective (the fit's tolerance, ftol = 1e-12 relative, sits at the noise floor
# of the importance likelihood's finite-difference gradient). An error e in a profile
# value moves an interval end by about e * SE / 2; on theophylline (importance
# likelihood) this halved the gradient evaluations and moved no end by more than 1e-4.
_FTOL_ABSOLUTE = 1e-6
# A profile interval ends where the log-likelihood falls chi2_1(0.95) / 2 = 1.92 below the
# estimate's. A profile that rises d above it moves the ends of a quadratic profile by
# about d / 1.96 SEs (with thresholds relative to its top): past 0.2, by more than 0.1 SE,
# and a warning says so. Theophylline's variance of log ke at its bound rises 0.13.
ABOVE_TOL = 0.2
# The objective's MC SE at the estimate past which its profile values are too noisy for
# intervals: a quarter of the 1.92 threshold. The fit polishes to 0.1 where its budget
# allows (theophylline), a 100-subject broad two-compartment study stopped at 3.0.
PROFILE_MAX_SE = 0.5


@dataclass(frozen=True, eq=False)
class PopulationProfile:
    """Profile likelihoods of a population fit.

    Attributes
    ----------
    table : DataFrame
        Columns ``parameter, estimate, lower, upper``; a bound is ``-inf`` or
        ``inf`` when the profile stays above the threshold up to the
        parameter's bound (an open interval).
    result : pypesto.Result
        The profiles (for :func:`sknlme.plotting.plot_profiles`).

    Examples
    --------
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme.population import NLMEPopulationEstimator
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(30, random_state=0)
    >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
    ...                               n_starts=2, random_state=0).fit(X)
    >>> prof = pop.result_.profile(["theta0"])
    >>> list(prof.table.columns)
    ['parameter', 'estimate', 'lower', 'upper']
    """

    table: pd.DataFrame
    result: pypesto.Result


def profile_fit(fit, params=None, confidence=0.95, optimizer=None, profile_options=None):
    """Profile likelihoods and likelihood-ratio confidence intervals.

    Each free population parameter is moved along its range while the others
    are re-optimised, on the fit draws (common random numbers, so the profile
    is smooth), starting from the estimate. The interval holds the values
    whose likelihood ratio stays above ``exp(-chi2_1(confidence) / 2)``.

    Parameters
    ----------
    fit : PopulationFitResult
        A fit (``estimator.result_``).
    params : list of str, default=None
        Names among ``fit.x_names`` (all free parameters when None).
    confidence : float, default=0.95
        Level of the intervals.
    optimizer : pypesto.optimize.Optimizer, default=None
        Optimiser along the profiles. When None, L-BFGS-B as in the fit (see
        ``default_optimizer``) but stopping
        once an iteration gains less than about ``1e-6`` in the negative
        log-likelihood (``ftol = 1e-6 / max(1, |f|)``, never below the fit's 1e-12).
    profile_options : pypesto.profile.ProfileOptions, default=None
        Step sizes etc.; ``ratio_min`` is lowered below the threshold if needed.

    Returns
    -------
    PopulationProfile
        ``table`` with columns ``parameter, estimate, lower, upper`` (a bound
        is ``-inf`` or ``inf`` when the profile stays above the threshold up
        to the parameter's bound: an open interval, the parameter is not
        identifiable there or the bound is too tight) and the pyPESTO
        ``result``.

    Warns
    -----
    RuntimeWarning
        For the importance likelihood: when its Monte-Carlo SE at the estimate
        exceeds ``PROFILE_MAX_SE`` (0.5), naming the individuals with the
        largest terms; and when a profile step ends more than ``ABOVE_TOL``
        (0.2) above the estimate's log-likelihood (such steps are recorded at
        the estimate's value, so the ratios stay at most 1).

    Examples
    --------
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme.population import NLMEPopulationEstimator, profile_fit
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(30, random_state=0)
    >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
    ...                               n_starts=2, random_state=0).fit(X)
    >>> table = profile_fit(pop.result_, ["theta0"]).table
    >>> bool(table.lower[0] < table.estimate[0] < table.upper[0])
    True
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    names = list(fit.x_names)
    params = names if params is None else [params] if isinstance(params, str) else list(params)
    unknown = [p for p in params if p not in names]
    if unknown:
        raise ValueError(f"cannot profile {unknown}: not free population parameters {names}")
    objective = fit.objective
    if getattr(objective, "exact_likelihood", False) and getattr(objective, "re", ()).size:
        # the importance likelihood: every profile step on a surrogate centred at its start
        objective = RecentredObjective(objective, fit.x)
    problem = make_problem(objective, names)
    result = pypesto.Result(problem)
    chosen = next(r for r in fit.optimize_result.optimize_result.list if r.id == fit.chosen_start)
    result.optimize_result.append(chosen)  # profiles start at (and are relative to) the estimate
    threshold = pypesto.profile.chi2_quantile_to_ratio(confidence, df=1)
    # a copy: ratio_min is adjusted below, and the caller's options stay as passed
    profile_options = copy.copy(profile_options or pypesto.profile.ProfileOptions())
    if optimizer is None:
        optimizer = default_optimizer()
        ftol = _FTOL_ABSOLUTE / max(1.0, abs(float(chosen.fval)))
        optimizer.options["ftol"] = max(ftol, optimizer.options["ftol"])
    profile_options.ratio_min = min(profile_options.ratio_min, 0.9 * threshold)
    if isinstance(objective, RecentredObjective):
        _check_noise(fit.objective, fit.x)
        optimizer = RecentringOptimizer(objective, optimizer, floor=float(chosen.fval))
    result = pypesto.profile.parameter_profile(
        problem=problem,
        result=result,
        optimizer=optimizer,
        profile_index=[names.index(p) for p in params],
        profile_options=profile_options,
        progress_bar=False,
    )
    if isinstance(optimizer, RecentringOptimizer) and optimizer.lowest is not None:
        _warn_above(optimizer.lowest, float(chosen.fval), names, fit.x)
    table = profile_intervals(result, names, fit.x, confidence)
    table = table.set_index("parameter").loc[params].reset_index()
    return PopulationProfile(table=table, result=result)


def _check_noise(objective, x):
    """Warn when the objective's Monte-Carlo SE at ``x`` is too large for profile intervals."""
    with np.errstate(all="ignore"):
        se = mc_standard_errors(objective.weights(x))
    total = float(np.sqrt(np.sum(se**2)))
    if total > PROFILE_MAX_SE or not np.isfinite(total):
        worst = np.argsort(np.nan_to_num(se, nan=np.inf))[::-1][:5]
        ids = ", ".join(repr(objective._ids[i]) for i in worst)
        warnings.warn(
            f"the importance log-likelihood's Monte-Carlo SE at the estimate is {total:.2f} "
            f"with {objective.K} draws per individual (largest terms: {ids}), against the "
            f"profile threshold of about 1.9: the profile intervals move with the draws. "
            f"More draws (n_samples) or better proposals are needed for them.",
            RuntimeWarning,
            stacklevel=4,
        )


def _warn_above(lowest, fval, names, x):
    """Warn that a profile step found a higher likelihood than the estimate's."""
    f_low, x_low = lowest
    if fval - f_low <= ABOVE_TOL:
        return
    moved = np.abs(x_low - np.asarray(x, dtype=float))
    where = ", ".join(f"{names[j]} = {x_low[j]:.4g}" for j in np.argsort(moved)[::-1][:3])
    warnings.warn(
        f"a profile reached a log-likelihood {fval - f_low:.2f} above the estimate's (at "
        f"{where}): the estimate is not the maximum of its objective, and the intervals "
        f"(thresholds relative to the estimate) are too wide; refit with more draws or starts",
        RuntimeWarning,
        stacklevel=4,
    )


def profile_intervals(result, names, x, confidence=0.95):
    """Likelihood-ratio intervals from computed profiles, at any ``confidence``.

    The profiles hold likelihood ratios along each parameter's path, so the
    intervals of another level need no new optimisation (a level whose
    threshold lies below the paths' lowest ratio gives open ends).

    Parameters
    ----------
    result : pypesto.Result
        With profiles (``PopulationProfile.result`` or an estimator's
        ``profile_result_``).
    names : list of str
        The free parameter names (``fit.x_names``), in the problem's order.
    x : array-like of shape (n_x,)
        The estimate (``fit.x``).
    confidence : float, default=0.95

    Returns
    -------
    DataFrame
        ``parameter, estimate, lower, upper`` for the profiled parameters
        (``-inf``/``inf``: open ends, see :func:`profile_fit`).

    Examples
    --------
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme.population import NLMEPopulationEstimator, profile_intervals
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(30, random_state=0)
    >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
    ...                               n_starts=2, random_state=0).fit(X)
    >>> prof = pop.result_.profile(["theta0"])
    >>> t90 = profile_intervals(prof.result, pop.result_.x_names, pop.result_.x, 0.9)
    >>> bool(prof.table.lower[0] < t90.lower[0] < t90.upper[0] < prof.table.upper[0])
    True
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    names = list(names)
    if not result.profile_result.list:
        raise ValueError("the result holds no profiles (compute them with profile_fit)")
    threshold = pypesto.profile.chi2_quantile_to_ratio(confidence, df=1)
    rows = []
    for j, prof in enumerate(result.profile_result.list[-1]):
        if prof is None:
            continue
        xs, ratios = np.asarray(prof.x_path)[j], np.asarray(prof.ratio_path)
        order = np.argsort(xs)
        xs, ratios = xs[order], ratios[order]
        lower, upper = pypesto.profile.calculate_approximate_ci(xs, ratios, threshold)
        if ratios[0] >= threshold:
            lower = -np.inf
        if ratios[-1] >= threshold:
            upper = np.inf
        rows.append((names[j], float(np.asarray(x)[j]), float(lower), float(upper)))
    return pd.DataFrame(rows, columns=["parameter", "estimate", "lower", "upper"])
