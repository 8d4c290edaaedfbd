"""The scikit-learn estimator of population (NLME) parameters."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from ._fallback import sample_with_fallback
from ._fitted import FittedPopulationMixin
from ._inputs import bind_to_study, build_objective, covariate_effects, prior_scale
from ._multistart import distinct_optima, random_startpoints, successful_starts
from ._network_check import check_network
from ._params import PARAMETER_CONSTRAINTS, validate_params
from ._refine import importance_fit
from ._result import PopulationFitResult
from ._screening import screened_multistart


class NLMEPopulationEstimator(FittedPopulationMixin, BaseEstimator):
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
        Parameters with a random effect; when None, the model's structural
        parameters (``model.structural_params``: every parameter but the
        residual-error ones of ``model.error_params``). The others have the
        fixed variance set by ``variance_floor``.
    covariates : dict, default=None
        Column -> parameters it shifts linearly (the raw numeric column), or -> ``{"params":
        [...], "model": "linear" or "log", "center": c}``: ``c_i - c`` or ``log(c_i / c)`` (a
        power model), the fixed effect then at ``c``. Encode categories first (OneHotEncoder).
    variance_groups : dict, default=None
        ``{column: [params]}``: each level of that categorical column gets its own
        variance of these random effects, ``log_var(p)[column=level]`` (diag only).
    random_effects_distribution : {"normal", "student_t"}, default="normal"
        Multivariate t random effects, scale ``Psi``, normalising constant included
        (``loglik_`` compares with a normal fit's; diag only).
    df : float, default=None
        Fixed t degrees of freedom; None estimates ``log_df = log(df)`` in [0, log 1000].
    fixed : dict, default=None
        Population parameter name (see ``x_names_``) -> value held fixed.
    n_samples : int, default=100
        Posterior draws per individual for the fit (draws are keyed by
        individual ID, so an individual's terms do not depend on the other rows).
    n_starts : int, default=20
        Optimiser starts, uniform in the bounds. With more than 2,000
        individuals they run on 2,000 drawn at random, and the best 4 distinct
        end points are finished on all (at N = 10,000 a third of the time).
    optimizer : pypesto.optimize.Optimizer, default=None
        Local optimiser; SciPy L-BFGS-B when None.
    bounds : dict, default=None
        Population parameter name -> ``(low, high)``, overriding defaults
        derived from the range of the draws.
    variance_floor : float, default=1e-3
        Relative variance of parameters without random effect in the amortized
        likelihood: parameter ``j`` gets ``variance_floor * max(1, v_j)`` with
        ``v_j`` its prior variance (``model.prior_cov``), so that a
        natural-scale parameter of prior SD 200 gets an SD of 6.3, not 0.03
        (the log-scale parameters of the built-in models, ``v_j <= 1``, keep
        1e-3). The importance likelihood holds them at their population value
        exactly.
    n_jobs : int, default=None
        Parallel starts through joblib (active backend; threads by default).
    random_state : int, RandomState or None, default=None
        Seeds the draws and the start points.
    likelihood : {"auto", "amortized", "importance"}, default="auto"
        ``"auto"``: ``"importance"`` where ``model.has_likelihood``, else
        ``"amortized"`` (``likelihood_`` says which ran).
        ``"amortized"``: the posterior stands for ``p(y|phi) p0(phi)`` (the
        log-likelihood is then known up to a constant that depends on the data
        only: not comparable across models or tools, so no AIC or BIC).
        ``"importance"``: the model's exact observation likelihood is
        integrated over the random effects by importance sampling (needs
        ``model.has_likelihood``; see :class:`ImportanceObjective`), with
        parameters without random effect at their population value exactly;
        the best amortized end points are refined on it. Log-likelihoods,
        AIC and BIC then compare with NONMEM, Monolix or nlme.
    on_outside : {"auto", "fallback", "warn", "raise"}, default="auto"
        Individuals outside the network's training designs (its envelope:
        ``posterior.check_envelope``) or with non-finite network draws:
        ``"fallback"`` gives them draws and importance proposals from the
        Laplace approximation of their own posterior on the model's exact
        likelihood (``fallback_`` names them); ``"warn"`` keeps the network's
        draws with its warning; ``"raise"`` stops with an error naming them.
        ``"auto"``: ``"fallback"`` where ``model.has_likelihood``, else
        ``"raise"``. Independently of this, with the importance likelihood an
        individual whose effective sample size under the network-based
        proposal is below a quarter of the draws gets the Laplace proposal
        where that does better.
    verbose : int, default=0
        Verbosity of the parallel starts.
    scheduler : None, "local", str or distributed.Client, default=None
        Where the importance likelihood's per-individual passes run: in this
        process (None); on a new ``dask.distributed`` ``LocalCluster`` of 2
        worker processes (``"local"``, closed after the fit); on the Dask
        scheduler at an address (``"tcp://host:8786"``) or a ``Client`` of a
        running cluster. Blocks of individuals are sent to the workers and
        the sums are taken over all individuals afterwards, so the estimates
        are the same bit for bit; network sampling and the optimiser stay in
        this process. An address (not a ``Client``) keeps the estimator
        clonable for ``GridSearchCV``.

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
    n_observations_ : int
        Observed (non-missing) values in ``X``.
    likelihood_ : {"amortized", "importance"}
        The likelihood that ran (``likelihood="auto"`` resolved).
    loglik_, aic_, bic_ : float
        Log-likelihood on the re-scoring draws (importance: less the
        delta-method bias ``-sum(mc_se_**2) / 2`` of its log-means); ``aic = 2k - 2 loglik`` and
        ``bic = k log(n) - 2 loglik`` with ``k`` free parameters and ``n`` the
        number of observed values ``n_observations_``, as R's ``BIC()`` of an
        nlme fit (NONMEM reports no BIC). NaN for the
        amortized likelihood: its log-likelihood holds an unknown constant that
        depends on the data and the network, so it compares neither across
        models nor with other tools.
    x_, x_names_ : ndarray, list of str
        Free population parameters and their names.
    standard_errors_ : Series
        Standard errors of ``x_`` (inverse finite-difference Hessian of the
        analytic gradient, on the re-scoring draws).
    ess_ : Series
        Effective sample size of each individual's weights at the estimate,
        on the re-scoring draws; a warning names individuals below 5 % of them.
    mc_se_ : Series
        Monte-Carlo standard error of each individual's log-likelihood term
        on the re-scoring draws, ``sqrt(1/ESS - 1/K)``; ``loglik_mc_se_`` is
        that of ``loglik_`` (root sum of squares). With the importance
        likelihood re-scoring draws are added until ``loglik_mc_se_ <= 0.03``
        and every term's is <= 0.1, within 2**22 draws in all (which binds
        from a few hundred individuals: at N = 10,000 ``loglik_mc_se_`` ~ 6).
    fallback_ : DataFrame
        Individuals that fell back to their Laplace approximation (``reason``,
        ``converged``), indexed by ID; empty when none did.
    n_starts_converged_ : int
        Starts that reached the best value (within ``max(0.01, 1e-6 |f|)``);
        with the importance likelihood, among its refinements; past 2,000
        individuals, among the finished end points of the screened starts.
    n_starts_failed_ : int
        Starts (and refinements) that raised or ended at a non-finite value.
    optimize_result_ : pypesto.Result
        All starts (the importance refinements for that likelihood), sorted.
    objective_ : PopulationObjective or ImportanceObjective
        The objective on the fit draws (kept for :meth:`profile`).
    result_ : PopulationFitResult
        The fit result; every other fitted attribute but ``profile_result_``,
        ``n_features_in_`` and ``feature_names_in_`` is a view of it.
    chosen_start_ : str
        Id of the start whose end point won the re-scoring.
    x_full_ : ndarray
        Full population vector (free and ``fixed`` entries).
    hessian_, covariance_x_ : ndarray
        Hessian of the negative log-likelihood at ``x_`` and its inverse.
    profile_result_ : pypesto.Result
        The profiles of the last :meth:`profile` call.
    n_features_in_, feature_names_in_ : int, ndarray
        Columns of the individuals table seen in fit.

    Examples
    --------
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme.population import NLMEPopulationEstimator
    >>> model = LinearGaussian(n_params=2, sigma=0.3)
    >>> X, _ = model.simulate(20, random_state=0)
    >>> post = ExactGaussianPosterior(model).fit()
    >>> pop = NLMEPopulationEstimator(post, n_samples=50, n_starts=2, random_state=0).fit(X)
    >>> list(pop.fixed_effects_.index)
    ['theta0', 'theta1']
    >>> pop.predict(X).shape
    (20, 2)
    >>> pop.score_samples(X).shape
    (20,)
    """

    _parameter_constraints: dict = PARAMETER_CONSTRAINTS

    _RESCORE_FACTOR = 10
    _N_RESCORE = 5
    _ESS_WARN_FRACTION = 0.05

    def __init__(
        self,
        posterior,
        covariance="diag",
        random_effects=None,
        covariates=None,
        variance_groups=None,
        random_effects_distribution="normal",
        df=None,
        fixed=None,
        n_samples=100,
        n_starts=20,
        optimizer=None,
        bounds=None,
        variance_floor=1e-3,
        n_jobs=None,
        random_state=None,
        likelihood="auto",
        on_outside="auto",
        verbose=0,
        scheduler=None,
    ):
        self.posterior = posterior
        self.covariance = covariance
        self.random_effects = random_effects
        self.covariates = covariates
        self.variance_groups = variance_groups
        self.random_effects_distribution = random_effects_distribution
        self.df = df
        self.fixed = fixed
        self.n_samples = n_samples
        self.n_starts = n_starts
        self.optimizer = optimizer
        self.bounds = bounds
        self.variance_floor = variance_floor
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.likelihood = likelihood
        self.on_outside = on_outside
        self.verbose = verbose
        self.scheduler = scheduler

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # X is an individuals table
        tags.target_tags.required = False
        tags.non_deterministic = False
        return tags

    # ------------------------------------------------------------ validation
    def _validate_params(self):
        validate_params(self)

    def _model(self):
        """The posterior's model, after the checks that need the (fitted) posterior."""
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

    def _resolved_likelihood(self, model):
        """``likelihood``, with ``"auto"`` resolved by ``model.has_likelihood``."""
        if self.likelihood != "auto":
            return self.likelihood
        return "importance" if model.has_likelihood else "amortized"

    def _resolved_on_outside(self, model):
        """``on_outside``, with ``"auto"`` resolved by ``model.has_likelihood``."""
        if self.on_outside != "auto":
            if self.on_outside == "fallback" and not model.has_likelihood:
                raise ValueError(
                    f"on_outside='fallback' needs a model with an observation likelihood; "
                    f"{model!r} has none (use 'warn' or 'raise')"
                )
            return self.on_outside
        return "fallback" if model.has_likelihood else "raise"

    def _objective(self, study, model, samples, offsets, fixed, bounds, group_levels=None):
        return build_objective(
            self, study, model, samples, offsets, fixed, bounds, prior_scale(model), group_levels
        )

    # ------------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=True)
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

        Examples
        --------
        >>> from sknlme.models import LinearGaussian
        >>> from sknlme.posterior import ExactGaussianPosterior
        >>> from sknlme.population import NLMEPopulationEstimator
        >>> model = LinearGaussian(n_params=1, sigma=0.3)
        >>> X, _ = model.simulate(20, random_state=0)
        >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
        ...                               n_starts=2, random_state=0).fit(X)
        >>> pop.x_names_
        ['theta0', 'log_var(theta0)']
        """
        model = self._model()
        covariate_effects(self.covariates)
        study = model.prepare(X)
        posterior, model = bind_to_study(self.posterior, study, model)
        self._fit_posterior = posterior
        validate_data(self, X, reset=True, skip_check_array=True)
        rng = check_random_state(self.random_state)
        seeds = rng.randint(0, 2**31 - 1, size=5)
        seed_draws, seed_starts, seed_rescore, seed_eval, seed_importance = (int(v) for v in seeds)
        self._eval_seed = seed_eval

        on_outside = self._resolved_on_outside(model)
        samples, offsets, fallback = sample_with_fallback(
            posterior, model, study, self.n_samples, seed_draws, on_outside
        )
        objective = self._objective(study, model, samples, offsets, self.fixed, self.bounds)
        lb, ub = objective.bounds
        x0 = random_startpoints(lb, ub, self.n_starts, seed_starts)
        multistart = dict(optimizer=self.optimizer, n_jobs=self.n_jobs, verbose=self.verbose)
        result = screened_multistart(
            objective, objective.x_names, lb, ub, x0, seed_starts + 1, **multistart
        )
        ok, failed = successful_starts(result, stacklevel=3)
        self.likelihood_ = self._resolved_likelihood(model)
        if self.likelihood_ == "amortized":
            check_network(posterior, model, study, samples, offsets, fallback.rows)
        if self.likelihood_ == "importance":
            # refine the best amortized end points on the exact likelihood and re-score
            fit = importance_fit(
                objective,
                model,
                study,
                ok,
                samples,
                fallback,
                (seed_importance, seed_rescore),
                self.n_samples,
                multistart,
                self.scheduler,
                self._N_RESCORE,
            )
            objective, result, ok, fallback = fit.objective, fit.result, fit.ok, fit.fallback
            rescorer, hessian_objective = fit.rescorer, fit.hessian_objective
            candidates, values = fit.candidates, fit.values
            failed += fit.failed
        else:
            draws = sample_with_fallback(
                posterior,
                model,
                study,
                self._RESCORE_FACTOR * self.n_samples,
                seed_rescore,
                on_outside,
                fallback,
            )
            rescorer = hessian_objective = objective.with_samples(*draws[:2])
            candidates = distinct_optima(ok[: self._N_RESCORE])
            values = [rescorer(r.x) for r in candidates]
        best = ok[0].fval
        converged = sum(r.fval - best <= max(0.01, 1e-6 * abs(best)) for r in ok)
        chosen = candidates[int(np.nanargmin(values))]
        self.result_ = PopulationFitResult.from_fit(
            objective,
            rescorer,
            chosen,
            min(values),
            result,
            study.index,
            converged,
            failed,
            self._ESS_WARN_FRACTION,
            n_observations=int(study.padded.value_mask().sum()),
            hessian_objective=hessian_objective,
            fallback=fallback.table,
        )
        return self
