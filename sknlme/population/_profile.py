"""Profile likelihoods of a fitted population estimator, through pyPESTO."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pypesto
import pypesto.profile
from pypesto.C import FVAL, MODE_FUN
from sklearn.utils.validation import check_is_fitted

from ._multistart import default_optimizer

__all__ = ["profile_population"]

# Profile optimisations stop once an L-BFGS-B iteration gains less than about this much
# in the objective (the fit's tolerance, ftol = 1e-12 relative, sits at the noise floor
# of the importance likelihood's finite-difference gradient). An error e in a profile
# value moves an interval end by about e * SE / 2; on theophylline (importance
# likelihood) this halved the gradient evaluations and moved no end by more than 1e-4.
_FTOL_ABSOLUTE = 1e-6


class _ProfileObjective(pypesto.Objective):
    """pyPESTO objective whose value-only calls skip the gradient.

    Wraps ``objective.value_and_gradient`` as ``make_problem`` does, but pyPESTO's
    profile step proposals search along the objective value alone (about one call
    in four along a profile), and through ``value_and_gradient`` each would compute
    and discard a gradient (``2 n_x`` further evaluations for finite differences).
    """

    def __init__(self, objective, x_names):
        super().__init__(fun=objective.value_and_gradient, grad=True, x_names=list(x_names))
        self._value = objective

    def call_unprocessed(self, x, sensi_orders, mode, return_dict, **kwargs):
        if mode == MODE_FUN and tuple(sensi_orders) == (0,):
            return {FVAL: self._value(x)}
        return super().call_unprocessed(x, sensi_orders, mode, return_dict, **kwargs)


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
        Optimiser along the profiles. When None, L-BFGS-B as in the fit (see
        :func:`~sknlme.population._multistart.default_optimizer`) but stopping
        once an iteration gains less than about ``1e-6`` in the negative
        log-likelihood (``ftol = 1e-6 / max(1, |f|)``, never below the fit's 1e-12).
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
    problem = pypesto.Problem(
        _ProfileObjective(objective, names), lb=lb, ub=ub, x_names=names, copy_objective=False
    )
    result = pypesto.Result(problem)
    chosen = next(
        r
        for r in estimator.optimize_result_.optimize_result.list
        if r.id == estimator.chosen_start_
    )
    result.optimize_result.append(chosen)  # profiles start at (and are relative to) the estimate
    threshold = pypesto.profile.chi2_quantile_to_ratio(confidence, df=1)
    # a copy: ratio_min is adjusted below, and the caller's options stay as passed
    profile_options = copy.copy(profile_options or pypesto.profile.ProfileOptions())
    if optimizer is None:
        optimizer = default_optimizer()
        ftol = _FTOL_ABSOLUTE / max(1.0, abs(float(chosen.fval)))
        optimizer.options["ftol"] = max(ftol, optimizer.options["ftol"])
    profile_options.ratio_min = min(profile_options.ratio_min, 0.9 * threshold)
    result = pypesto.profile.parameter_profile(
        problem=problem,
        result=result,
        optimizer=optimizer,
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
