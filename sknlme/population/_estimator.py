"""The scikit-learn estimator of population (NLME) parameters."""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import pandas as pd
import pypesto.optimize
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ..data import validate_individuals
from ._importance import ImportanceObjective
from ._inputs import covariate_effects, covariate_matrix, posterior_draws
from ._multistart import random_startpoints, run_multistart, start_failed
from ._objective import PopulationObjective
from ._summary import (
    derived_quantities,
    fd_hessian,
    inverse_hessian,
    population_table,
    warn_low_ess,
)

_LIKELIHOODS = ("amortized", "importance")


class NLMEPopulationEstimator(BaseEstimator):
    """Population (NLME) parameters from amortized individual posteriors.

    Individual parameters follow ``phi_i ~ N(beta + B^T c_i, Psi)``. The
    marginal likelihood of every individual is estimated from draws of its
    posterior ``q(phi | y_i)``, drawn once per fit (common random numbers),
    and maximised by pyPESTO multi-start optimisation with an analytic
    gradient. The best few starts are re-scored on ten times as many fresh
    draws and the best of them is kept.

    Parameters
    ----------
    posterior : estimator
        A fitted posterior (``model``, ``sample``, ``log_prob``), normally an
        :class:`~sknlme.AmortizedPosterior` wrapped in
        :class:`sklearn.frozen.FrozenEstimator` so that ``clone`` and model
        selection never retrain it.
    covariance : {"diag", "cholesky"} or list of lists of str, default="diag"
        Random-effects covariance: independent, full, or block diagonal.
    random_effects : list of str, default=None
        Parameters with a random effect (all when None); the others have the
        fixed variance ``variance_floor``.
    covariates : dict, default=None
        Covariate column -> list of parameter names it shifts linearly (in
        the column values as given, e.g. standardised by a ColumnTransformer).
        Columns must be numeric: encode categories first (``OneHotEncoder``).
    fixed : dict, default=None
        Population parameter name (see ``x_names_``) -> value held fixed.
    n_samples : int, default=100
        Posterior draws per individual for the fit.
    n_starts : int, default=20
        Optimiser starts, uniform in the bounds.
    optimizer : pypesto.optimize.Optimizer, default=None
        Local optimiser; SciPy L-BFGS-B when None.
    bounds : dict, default=None
        Population parameter name -> ``(low, high)``, overriding defaults
        derived from the range of the draws.
    variance_floor : float, default=1e-3
        Variance of parameters without random effect in the amortized
        likelihood (the importance likelihood holds them at their population
        value exactly).
    n_jobs : int, default=None
        Parallel starts through joblib (active backend; threads by default).
    random_state : int, RandomState or None, default=None
        Seeds the draws and the start points.
    likelihood : {"amortized", "importance"}, default="amortized"
        ``"amortized"``: the posterior stands for ``p(y|phi) p0(phi)`` (the
        log-likelihood is then known up to a constant that depends on the data
        only). ``"importance"``: the model's exact observation likelihood is
        integrated over the random effects by importance sampling (needs
        ``model.has_likelihood``; see :class:`ImportanceObjective`), with
        parameters without random effect at their population value exactly;
        the best amortized end points are refined on it. Log-likelihoods,
        AIC and BIC then compare with NONMEM, Monolix or nlme.
    verbose : int, default=0
        Verbosity of the parallel starts.

    Attributes
    ----------
    fixed_effects_ : Series
        ``beta`` by parameter name.
    covariate_effects_ : DataFrame
        ``B``, covariates x parameters (0 where no effect).
    random_effects_ : Series
        Standard deviations of the random effects.
    covariance_ : DataFrame
        ``Psi`` (including ``variance_floor`` for parameters without effect).
    loglik_, aic_, bic_ : float
        Log-likelihood on the re-scoring draws; ``aic = 2k - 2 loglik`` and
        ``bic = k log(n) - 2 loglik`` with ``k`` free parameters and ``n``
        individuals (the individual is the independent unit).
    x_, x_names_ : ndarray, list of str
        Free population parameters and their names.
    standard_errors_ : Series
        Standard errors of ``x_`` (inverse finite-difference Hessian of the
        analytic gradient, on the re-scoring draws).
    ess_ : Series
        Effective sample size of each individual's weights at the estimate,
        on the re-scoring draws; a warning names individuals below 5 % of them.
    n_starts_converged_ : int
        Starts that reached the best value (within ``max(0.01, 1e-6 |f|)``);
        with the importance likelihood, among its refinements.
    n_starts_failed_ : int
        Starts (and refinements) that raised or ended at a non-finite value.
    optimize_result_ : pypesto.Result
        All starts (the importance refinements for that likelihood), sorted.
    objective_ : PopulationObjective or ImportanceObjective
        The objective on the fit draws (kept for :meth:`profile`).
    chosen_start_ : str
        Id of the start whose end point won the re-scoring.
    x_full_ : ndarray
        Full population vector (free and ``fixed`` entries).
    hessian_, covariance_x_ : ndarray
        Hessian of the negative log-likelihood at ``x_`` and its inverse.
    profile_result_ : pypesto.Result
        Set by :meth:`profile`.
    n_features_in_, feature_names_in_ : int, ndarray
        Columns of the individuals table seen in fit.

    Examples
    --------
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior._exact import ExactGaussianPosterior
    >>> from sknlme.population import NLMEPopulationEstimator
    >>> model = LinearGaussian(n_params=2, sigma=0.3)
    >>> X, _ = model.simulate(20, random_state=0)
    >>> post = ExactGaussianPosterior(model).fit()
    >>> pop = NLMEPopulationEstimator(post, n_samples=50, n_starts=2, random_state=0).fit(X)
    >>> list(pop.fixed_effects_.index)
    ['theta0', 'theta1']
    >>> pop.predict(X).shape
    (20, 2)
    """

    _RESCORE_FACTOR = 10
    _N_RESCORE = 5
    _N_REFINE = 3
    _ESS_WARN_FRACTION = 0.05

    def __init__(
        self,
        posterior,
        covariance="diag",
        random_effects=None,
        covariates=None,
        fixed=None,
        n_samples=100,
        n_starts=20,
        optimizer=None,
        bounds=None,
        variance_floor=1e-3,
        n_jobs=None,
        random_state=None,
        likelihood="amortized",
        verbose=0,
    ):
        self.posterior = posterior
        self.covariance = covariance
        self.random_effects = random_effects
        self.covariates = covariates
        self.fixed = fixed
        self.n_samples = n_samples
        self.n_starts = n_starts
        self.optimizer = optimizer
        self.bounds = bounds
        self.variance_floor = variance_floor
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.likelihood = likelihood
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # X is an individuals table
        tags.target_tags.required = False
        tags.non_deterministic = False
        return tags

    # ------------------------------------------------------------ validation
    def _check_params(self):
        for name in ("n_samples", "n_starts"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if isinstance(self.covariance, str) and self.covariance not in ("diag", "cholesky"):
            raise ValueError(
                f"covariance must be 'diag', 'cholesky' or a list of parameter blocks, "
                f"got {self.covariance!r}"
            )
        if self.likelihood not in _LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {_LIKELIHOODS}, got {self.likelihood!r}")
        if self.optimizer is not None and not isinstance(
            self.optimizer, pypesto.optimize.Optimizer
        ):
            raise TypeError(
                f"optimizer must be a pypesto.optimize.Optimizer, got {type(self.optimizer)}"
            )
        self._effects()
        check_is_fitted(self.posterior)
        model = getattr(self.posterior, "model", None)
        if model is None or not hasattr(model, "param_names"):
            raise TypeError("posterior has no `model` with param_names")
        if self.likelihood == "importance" and not model.has_likelihood:
            raise ValueError(
                f"likelihood='importance' needs a model with an observation likelihood; "
                f"{model!r} has none (use likelihood='amortized')"
            )
        return model

    def _effects(self):
        return covariate_effects(self.covariates)

    def _draws(self, X, model, n_samples, seed):
        return posterior_draws(self.posterior, model, X, n_samples, seed)

    def _objective(self, X, model, samples, offsets, fixed, bounds):
        names = list(self._effects())
        C = covariate_matrix(X, names)
        return PopulationObjective(
            samples,
            offsets,
            list(model.param_names),
            covariance=self.covariance,
            random_effects=self.random_effects,
            covariates=C if names else None,
            covariate_names=names or None,
            covariate_effects=self._effects() or None,
            fixed=fixed,
            variance_floor=self.variance_floor,
            bounds=bounds,
        )

    # ------------------------------------------------------------------- fit
    def fit(self, X, y=None):
        """Estimate the population parameters.

        Parameters
        ----------
        X : DataFrame
            Individuals table (covariate columns and ``"records"``).
        y : None
            Ignored.

        Returns
        -------
        self : NLMEPopulationEstimator
        """
        model = self._check_params()
        validate_individuals(X, n_outputs=model.n_outputs)
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        rng = check_random_state(self.random_state)
        seeds = rng.randint(0, 2**31 - 1, size=5)
        seed_draws, seed_starts, seed_rescore, seed_eval, seed_importance = seeds
        self._eval_seed = int(seed_eval)

        samples, offsets = self._draws(X, model, self.n_samples, int(seed_draws))
        objective = self._objective(X, model, samples, offsets, self.fixed, self.bounds)
        lb, ub = objective.bounds
        x0 = random_startpoints(lb, ub, self.n_starts, int(seed_starts))
        result = run_multistart(
            objective, objective.x_names, lb, ub, x0, self.optimizer, self.n_jobs, self.verbose
        )
        ok, failed = self._successful_starts(result)
        if self.likelihood == "importance":
            # refine the best amortized end points on the exact likelihood
            objective = ImportanceObjective(
                objective, model, X, self.n_samples, random_state=int(seed_importance)
            )
            x0 = np.array([r.x for r in ok[: self._N_REFINE]])
            result = run_multistart(
                objective, objective.x_names, lb, ub, x0, self.optimizer, self.n_jobs, self.verbose
            )
            ok, failed_refine = self._successful_starts(result)
            failed += failed_refine
        self.n_starts_failed_ = failed
        best = ok[0].fval
        self.n_starts_converged_ = sum(r.fval - best <= max(0.01, 1e-6 * abs(best)) for r in ok)

        # re-score the best few starts on fresh, larger draws (fixed seed)
        rescorer = self._rescorer(objective, X, model, int(seed_rescore))
        candidates = ok[: self._N_RESCORE]
        values = [rescorer(r.x) for r in candidates]
        chosen = candidates[int(np.nanargmin(values))]
        self._set_estimate(rescorer, objective, chosen, min(values), model, X)
        self.optimize_result_ = result
        self.objective_ = objective
        self.chosen_start_ = chosen.id
        return self

    def _successful_starts(self, result):
        """Starts that ended at a finite value (sorted), and the number that failed."""
        starts = result.optimize_result.list
        ok = [r for r in starts if not start_failed(r)]
        if not ok:
            raise RuntimeError(
                f"all {len(starts)} optimiser starts failed; first message: {starts[0].message}"
            )
        if len(ok) < len(starts):
            warnings.warn(
                f"{len(starts) - len(ok)} of {len(starts)} optimiser starts failed "
                f"(e.g. {next(r.message for r in starts if start_failed(r))!r}); "
                "the estimate uses the others",
                RuntimeWarning,
                stacklevel=3,
            )
        return ok, len(starts) - len(ok)

    def _rescorer(self, objective, X, model, seed):
        """``objective`` on ``_RESCORE_FACTOR`` times more fresh draws."""
        n_draws = self._RESCORE_FACTOR * self.n_samples
        if isinstance(objective, ImportanceObjective):
            return objective.with_draws(n_draws, random_state=seed)
        return objective.with_samples(*self._draws(X, model, n_draws, seed))

    def _set_estimate(self, rescorer, objective, chosen, fval, model, X):
        names = list(model.param_names)
        x = np.asarray(chosen.x, dtype=float)
        self.x_, self.x_names_ = x.copy(), list(objective.x_names)
        self.x_full_ = objective.x_full(x)
        est = objective.unpack(x)
        cov_names = list(self._effects())
        self.fixed_effects_ = pd.Series(est["beta"], index=names, name="fixed_effects")
        self.covariate_effects_ = pd.DataFrame(est["B"], index=cov_names, columns=names)
        re = [p for p in names if p in set(self.random_effects or names)]
        sd = np.sqrt(np.diag(est["cov"]))
        self.random_effects_ = pd.Series(
            sd[[names.index(p) for p in re]], index=re, name="sd", dtype=float
        )
        self.covariance_ = pd.DataFrame(est["cov"], index=names, columns=names)
        self.loglik_ = -float(fval)
        k, n = len(x), len(X)
        self.aic_ = 2 * k - 2 * self.loglik_
        self.bic_ = k * np.log(n) - 2 * self.loglik_
        self.hessian_ = fd_hessian(rescorer.gradient, x)
        self.covariance_x_ = inverse_hessian(self.hessian_, self.x_names_)
        se = np.sqrt(
            np.where(np.diag(self.covariance_x_) >= 0, np.diag(self.covariance_x_), np.nan)
        )
        self.standard_errors_ = pd.Series(se, index=self.x_names_, name="se")
        w = rescorer.weights(x)
        self.ess_ = pd.Series(1.0 / np.sum(w**2, axis=1), index=X.index, name="ess")
        warn_low_ess(self.ess_, w.shape[1], self._ESS_WARN_FRACTION)

    # -------------------------------------------------------- after fitting
    def _eval_objective(self, X):
        """The fitted kind of objective on ``X``, with fresh draws (fixed seed)."""
        check_is_fitted(self, "x_")
        model = self._check_params()
        validate_individuals(X, n_outputs=model.n_outputs)
        if self.likelihood == "importance":
            samples, offsets = self._draws(X, model, self.n_samples, self._eval_seed)
            base = self._objective(X, model, samples, offsets, None, None)
            n_draws = self._RESCORE_FACTOR * self.n_samples
            return ImportanceObjective(base, model, X, n_draws, random_state=self._eval_seed)
        samples, offsets = self._draws(
            X, model, self._RESCORE_FACTOR * self.n_samples, self._eval_seed
        )
        return self._objective(X, model, samples, offsets, None, None)

    def score(self, X, y=None):
        """Mean log-likelihood per individual of ``X`` under the fitted population.

        Uses fresh posterior draws (``10 * n_samples``, fixed seed) and the
        same likelihood kind as the fit; works for held-out individuals.

        Parameters
        ----------
        X : DataFrame
            Individuals table.
        y : None
            Ignored.

        Returns
        -------
        float
        """
        objective = self._eval_objective(X)
        return float(np.mean(objective.individual_loglik(self.x_full_)))

    def predict(self, X):
        """Individual parameter estimates given the fitted population.

        Conditional means ``E[phi_i | y_i, theta]`` by self-normalised
        importance weights of the posterior draws.

        Parameters
        ----------
        X : DataFrame
            Individuals table.

        Returns
        -------
        DataFrame
            Indexed like ``X``, one column per parameter.
        """
        means = self._eval_objective(X).conditional_means(self.x_full_)
        return pd.DataFrame(means, index=X.index, columns=list(self.posterior.model.param_names))

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
            rse_percent, ci_lower, ci_upper, fixed``.
        """
        check_is_fitted(self, "x_")

        def derived(x):
            return derived_quantities(self.objective_.unpack(x), self.objective_.layout)

        return population_table(derived, self.x_, self.covariance_x_, confidence)

    def profile(self, params=None, confidence=0.95, **kwargs):
        """Profile likelihoods and confidence intervals (see :func:`profile_population`)."""
        from ._profile import profile_population

        return profile_population(self, params=params, confidence=confidence, **kwargs)
