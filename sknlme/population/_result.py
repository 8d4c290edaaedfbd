"""The result of a population fit: estimates, uncertainty, diagnostics.

Built once at the end of :meth:`NLMEPopulationEstimator.fit` from the layout,
the estimate, the re-scoring objective and the pyPESTO result. The array
maths lives in module functions (:func:`population_estimates`,
:func:`information_criteria`, the Hessian and the table in ``_summary``);
:class:`PopulationFitResult` only holds their outputs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._rescoring import loglik_bias, mc_se_series
from ._summary import (
    derived_quantities,
    fd_hessian,
    inverse_hessian,
    population_table,
    random_effect_rows,
    warn_low_ess,
)

__all__ = ["PopulationFitResult", "information_criteria", "population_estimates"]


def population_estimates(layout, x):
    """Fixed effects, covariate effects, random-effect SDs and covariance at free ``x``.

    Parameters
    ----------
    layout : Parametrization
        The objective's layout.
    x : array-like of shape (n_x,)
        Free population parameters.

    Returns
    -------
    dict
        ``fixed_effects`` (Series), ``covariate_effects`` (DataFrame,
        covariates x parameters), ``random_effects`` (Series of SDs of the
        parameters with a random effect) and ``covariance`` (DataFrame).

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.population import PopulationObjective, population_estimates
    >>> obj = PopulationObjective(np.zeros((2, 4, 1)), np.zeros((2, 4)), ["a"])
    >>> est = population_estimates(obj.layout, [1.0, np.log(4.0)])
    >>> float(est["fixed_effects"]["a"]), float(est["random_effects"]["a"])
    (1.0, 2.0)
    """
    names = list(layout.param_names)
    est = layout.unpack(np.asarray(x, dtype=float))
    rows = random_effect_rows(layout)  # grouped SDs as p[column=level]
    var = est.get("group_var", np.diag(est["cov"])[None])
    sd = [np.sqrt(var[g, j]) for _, j, g in rows]
    return {
        "fixed_effects": pd.Series(est["beta"], index=names, name="fixed_effects"),
        "covariate_effects": pd.DataFrame(est["B"], index=layout.covariate_names, columns=names),
        "random_effects": pd.Series(
            sd, index=[names[j] + tag for tag, j, _ in rows], name="sd", dtype=float
        ),
        "covariance": pd.DataFrame(est["cov"], index=names, columns=names),
    }


def information_criteria(loglik, k, n):
    """``(aic, bic)`` with ``k`` free parameters and ``n`` observations.

    ``aic = 2k - 2 loglik`` and ``bic = k log(n) - 2 loglik``. The population
    fit passes the number of observed values, as R's ``BIC()`` of an nlme fit
    does (theophylline: 132 observations of 12 subjects).

    Examples
    --------
    >>> from sknlme.population import information_criteria
    >>> information_criteria(-10.0, 2, 100)
    (24.0, 29.210340371976184)
    """
    return 2 * k - 2 * float(loglik), k * float(np.log(n)) - 2 * float(loglik)


class PopulationFitResult:
    """Estimates, standard errors and diagnostics of a population fit.

    Build it with :meth:`from_fit` (``NLMEPopulationEstimator.fit`` does);
    the estimator's fitted attributes (``fixed_effects_``, ...) are views of
    the attributes of the same name here.

    Attributes
    ----------
    fixed_effects, covariate_effects, random_effects, covariance : pandas objects
        See :func:`population_estimates`.
    x, x_names, x_full : ndarray, list of str, ndarray
        Free population parameters, their names, and the full vector.
    standard_errors : Series
        Standard errors of ``x`` (inverse finite-difference Hessian).
    hessian, covariance_x : ndarray
        Hessian of the negative log-likelihood at ``x`` and its inverse.
    ess : Series
        Effective sample size of each individual's weights at the estimate.
    mc_se, loglik_mc_se : Series, float
        Monte-Carlo SE of each individual's log-likelihood term and of
        ``loglik`` (see :func:`mc_standard_errors`).
    fallback : DataFrame
        Individuals that fell back to their Laplace approximation
        (``reason``, ``converged``), indexed by ID.
    likelihood : {"amortized", "importance"}
        Which likelihood the objective is.
    n_observations : int
        Observed (non-missing) values: the ``n`` of ``bic``.
    loglik, aic, bic : float
        Log-likelihood on the re-scoring draws (for the importance likelihood
        corrected for the delta-method bias of its log-means, see
        :func:`~sknlme.population._rescoring.loglik_bias`) and the information criteria;
        ``aic`` and ``bic`` are NaN for the amortized likelihood (known up to a
        constant that depends on the data: not comparable across models or tools).
    n_starts_converged, n_starts_failed : int
        Starts that reached the best value, and starts that failed.
    optimize_result : pypesto.Result
        All starts, sorted.
    objective : PopulationObjective or ImportanceObjective
        The objective on the fit draws (profiles run on it).
    chosen_start : str
        Id of the start whose end point won the re-scoring.
    layout : Parametrization
        The parameter layout.

    Examples
    --------
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme.population import NLMEPopulationEstimator
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(20, random_state=0)
    >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
    ...                               n_starts=2, random_state=0).fit(X)
    >>> res = pop.result_
    >>> res.x_names, bool(res.loglik == pop.loglik_)
    (['theta0', 'log_var(theta0)'], True)
    """

    def __init__(
        self,
        *,
        objective,
        x,
        loglik,
        hessian,
        ess,
        optimize_result,
        chosen_start,
        n_starts_converged,
        n_starts_failed,
        n_observations=None,
        mc_se=None,
        fallback=None,
    ):
        self.objective = objective
        self.layout = objective.layout
        self.x = np.asarray(x, dtype=float).copy()
        self.x_names = list(objective.x_names)
        self.x_full = objective.x_full(self.x)
        for name, value in population_estimates(self.layout, self.x).items():
            setattr(self, name, value)
        self.loglik = float(loglik)
        self.likelihood = "importance" if objective.exact_likelihood else "amortized"
        self.n_observations = len(ess) if n_observations is None else int(n_observations)
        self.aic, self.bic = (
            information_criteria(self.loglik, len(self.x), self.n_observations)
            if objective.exact_likelihood
            else (np.nan, np.nan)  # a log-likelihood up to a constant: no criteria
        )
        self.hessian = hessian
        self.covariance_x = inverse_hessian(hessian, self.x_names)
        var = np.diag(self.covariance_x)
        self.standard_errors = pd.Series(
            np.sqrt(np.where(var >= 0, var, np.nan)), index=self.x_names, name="se"
        )
        self.ess = ess
        self.mc_se = mc_se if mc_se is not None else pd.Series(np.nan, index=ess.index)
        self.loglik_mc_se = float(np.sqrt(np.sum(np.asarray(self.mc_se) ** 2)))
        self.fallback = (
            pd.DataFrame({"reason": [], "converged": []}, index=pd.Index([], name="ID"))
            if fallback is None
            else fallback
        )
        self.optimize_result = optimize_result
        self.chosen_start = chosen_start
        self.n_starts_converged = int(n_starts_converged)
        self.n_starts_failed = int(n_starts_failed)

    @classmethod
    def from_fit(
        cls,
        objective,
        rescorer,
        chosen,
        fval,
        optimize_result,
        index,
        n_starts_converged,
        n_starts_failed,
        ess_warn_fraction=0.05,
        n_observations=None,
        hessian_objective=None,
        fallback=None,
    ):
        """The result at the chosen start, with uncertainty from the re-scoring objective.

        Parameters
        ----------
        objective : PopulationObjective or ImportanceObjective
            The objective on the fit draws.
        rescorer : PopulationObjective or ImportanceObjective
            The same objective on the re-scoring draws: its gradient gives the
            Hessian, its weights the effective sample sizes.
        chosen : pypesto.OptimizerResult
            The start whose end point won the re-scoring.
        fval : float
            ``rescorer(chosen.x)``. For the exact (importance) likelihood the
            log-likelihood reported is ``-fval`` less the delta-method bias of
            its terms (:func:`loglik_bias`, from the re-scoring weights; the
            ``rescorer`` is then an :class:`ImportanceObjective`).
        optimize_result : pypesto.Result
            All starts.
        index : pandas.Index
            Individual IDs (row order of the objectives).
        n_starts_converged, n_starts_failed : int
            Start counts.
        ess_warn_fraction : float, default=0.05
            Individuals whose ESS is below this fraction of the draws are named
            in a RuntimeWarning.
        n_observations : int, default=None
            Observed values (the ``n`` of BIC); the number of individuals when None.
        hessian_objective : objective, default=None
            The objective whose gradient gives the Hessian (``rescorer`` when
            None): fewer draws than an adaptive ``rescorer`` may hold.
        fallback : DataFrame, default=None
            Individuals that fell back to their Laplace approximation.

        Returns
        -------
        PopulationFitResult

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.population import PopulationFitResult, PopulationObjective
        >>> from sknlme.population import random_startpoints, run_multistart
        >>> phi = np.random.default_rng(0).normal(1.0, 0.5, size=(30, 40, 1))
        >>> obj = PopulationObjective(phi, np.zeros((30, 40)), ["a"])
        >>> res = run_multistart(obj, obj.x_names, *obj.bounds,
        ...                      random_startpoints(*obj.bounds, 2, random_state=0))
        >>> best = res.optimize_result[0]
        >>> fit = PopulationFitResult.from_fit(obj, obj, best, best.fval, res, np.arange(30), 2, 0)
        >>> bool(abs(fit.fixed_effects["a"] - 1.0) < 0.2), fit.x_names
        (True, ['a', 'log_var(a)'])
        """
        x = np.asarray(chosen.x, dtype=float)
        w = rescorer.weights(x)
        ess = pd.Series(1.0 / np.sum(w**2, axis=1), index=index, name="ess")
        warn_low_ess(ess, w.shape[1], ess_warn_fraction)
        hessian_objective = rescorer if hessian_objective is None else hessian_objective
        bias = loglik_bias(w, rescorer.n_defensive) if objective.exact_likelihood else 0.0
        return cls(
            objective=objective,
            x=x,
            loglik=-float(fval) - bias,
            hessian=fd_hessian(hessian_objective.gradient, x),
            mc_se=mc_se_series(w, index),
            fallback=fallback,
            ess=ess,
            optimize_result=optimize_result,
            chosen_start=chosen.id,
            n_starts_converged=n_starts_converged,
            n_starts_failed=n_starts_failed,
            n_observations=n_observations,
        )

    def summary(self, confidence=0.95):
        """Parameter table like NONMEM's or Monolix's output.

        Parameters
        ----------
        confidence : float, default=0.95
            Level of the Wald intervals.

        Returns
        -------
        DataFrame
            One row per fixed effect, covariate effect, random-effect SD and
            variance, and correlation: ``parameter, kind, estimate, se,
            rse_percent, ci_lower, ci_upper, fixed``. Its ``attrs`` hold
            ``likelihood``, ``loglik``, ``aic``, ``bic`` and ``loglik_note``
            (for the amortized likelihood: not comparable, no AIC/BIC).

        Examples
        --------
        >>> from sknlme.models import LinearGaussian
        >>> from sknlme.posterior import ExactGaussianPosterior
        >>> from sknlme.population import NLMEPopulationEstimator
        >>> model = LinearGaussian(n_params=1, sigma=0.3)
        >>> X, _ = model.simulate(20, random_state=0)
        >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
        ...                               n_starts=2, random_state=0).fit(X)
        >>> list(pop.result_.summary().parameter)
        ['theta0', 'SD(theta0)', 'Var(theta0)']
        """
        layout = self.layout

        def derived(x):
            return derived_quantities(layout.unpack(x), layout)

        table = population_table(derived, self.x, self.covariance_x, confidence)
        exact = self.likelihood == "importance"
        table.attrs.update(
            likelihood=self.likelihood,
            loglik=self.loglik,
            aic=self.aic,
            bic=self.bic,
            loglik_note="exact (importance sampling): comparable across models and tools"
            if exact
            else "amortized: up to a constant, not comparable across models or tools; no AIC/BIC",
        )
        return table

    def profile(self, params=None, confidence=0.95, optimizer=None, profile_options=None):
        """Profile likelihoods and likelihood-ratio confidence intervals.

        See :func:`profile_fit` for the method and the parameters.

        Returns
        -------
        PopulationProfile
            ``table`` (``parameter, estimate, lower, upper``) and ``result``
            (the pyPESTO result with the profiles).

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
        >>> list(prof.table.parameter), bool(prof.result.profile_result.list)
        (['theta0'], True)
        """
        from ._profile import profile_fit

        return profile_fit(self, params, confidence, optimizer, profile_options)
