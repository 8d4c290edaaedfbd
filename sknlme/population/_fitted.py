"""What a fitted population estimator answers: views of its result, scores, predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted, validate_data

from ._eval_cache import cached_objective
from ._fallback import low_ess_fallback, sample_with_fallback
from ._importance import ImportanceObjective
from ._residuals import individual_table, observation_table, shrinkage
from ._tables import parameter_table

__all__ = ["FittedPopulationMixin"]


def _view(name):
    return property(lambda self: getattr(self.result_, name), doc=f"``result_.{name}``.")


class FittedPopulationMixin:
    """Fitted attributes (views of ``result_``), ``score_samples``, ``score``,
    ``predict``, ``summary``, ``profile``, the pharmacometric tables and ``sample_posterior`` of
    :class:`NLMEPopulationEstimator`.

    Examples
    --------
    >>> from sknlme.population import NLMEPopulationEstimator
    >>> hasattr(NLMEPopulationEstimator, "score_samples")
    True
    """

    # fitted attributes: views of result_
    fixed_effects_ = _view("fixed_effects")
    covariate_effects_ = _view("covariate_effects")
    random_effects_ = _view("random_effects")
    covariance_ = _view("covariance")
    loglik_ = _view("loglik")
    aic_ = _view("aic")
    bic_ = _view("bic")
    n_observations_ = _view("n_observations")
    x_ = _view("x")
    x_names_ = _view("x_names")
    x_full_ = _view("x_full")
    standard_errors_ = _view("standard_errors")
    hessian_ = _view("hessian")
    covariance_x_ = _view("covariance_x")
    ess_ = _view("ess")
    mc_se_ = _view("mc_se")
    loglik_mc_se_ = _view("loglik_mc_se")
    fallback_ = _view("fallback")
    n_starts_converged_ = _view("n_starts_converged")
    n_starts_failed_ = _view("n_starts_failed")
    optimize_result_ = _view("optimize_result")
    objective_ = _view("objective")
    chosen_start_ = _view("chosen_start")

    # -------------------------------------------------------- after fitting
    def _posterior_of_fit(self):
        """The posterior the fit used (bound to the fit study's units where it rescales)."""
        return getattr(self, "_fit_posterior", None) or self.posterior

    def _eval_objective(self, X):
        """The fitted kind of objective on ``X``, with fresh draws (fixed seed)."""
        check_is_fitted(self)
        validate_data(self, X, reset=False, skip_check_array=True)
        posterior = self._posterior_of_fit()
        model = posterior.model
        study = model.prepare(X)
        return cached_objective(
            self, study, lambda: self._build_eval_objective(posterior, model, study)
        )

    def _build_eval_objective(self, posterior, model, study):
        n_draws = self._RESCORE_FACTOR * self.n_samples
        on_outside, seed = self._resolved_on_outside(model), self._eval_seed
        # the fit's variance group levels, so that x_full_ lines up on any X
        levels = self.objective_.layout.group_levels or None
        if self.likelihood_ == "importance":
            samples, offsets, fallback = sample_with_fallback(
                posterior, model, study, self.n_samples, seed, on_outside
            )
            base = self._objective(study, model, samples, offsets, None, None, levels)
            objective = ImportanceObjective(base, model, study, n_draws, random_state=seed)
            return low_ess_fallback(objective, model, study, self.x_full_, fallback, seed)[0]
        samples, offsets, _ = sample_with_fallback(
            posterior, model, study, n_draws, seed, on_outside
        )
        return self._objective(study, model, samples, offsets, None, None, levels)

    def score_samples(self, X):
        """Log-likelihood of each individual of ``X`` under the fitted population.

        Uses fresh posterior draws (``10 * n_samples``, fixed seed, keyed by
        individual) and the same likelihood kind as the fit; works for
        held-out individuals. An individual's value does not depend on the
        other rows of ``X`` or on their order.

        Parameters
        ----------
        X : DataFrame
            Individuals table, with the columns seen in fit.

        Returns
        -------
        ndarray of shape (n_individuals,)

        Examples
        --------
        >>> from sknlme.models import LinearGaussian
        >>> from sknlme.posterior import ExactGaussianPosterior
        >>> from sknlme.population import NLMEPopulationEstimator
        >>> model = LinearGaussian(n_params=1, sigma=0.3)
        >>> X, _ = model.simulate(20, random_state=0)
        >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
        ...                               n_starts=2, random_state=0).fit(X)
        >>> bool((pop.score_samples(X.iloc[[3, 1]]) == pop.score_samples(X)[[3, 1]]).all())
        True
        """
        return self._eval_objective(X).individual_loglik(self.x_full_)

    def score(self, X, y=None):
        """Mean log-likelihood per individual of ``X`` (the mean of :meth:`score_samples`).

        Parameters
        ----------
        X : DataFrame
            Individuals table.
        y : None
            Ignored.

        Returns
        -------
        float

        Examples
        --------
        >>> from sknlme.models import LinearGaussian
        >>> from sknlme.posterior import ExactGaussianPosterior
        >>> from sknlme.population import NLMEPopulationEstimator
        >>> model = LinearGaussian(n_params=1, sigma=0.3)
        >>> X, _ = model.simulate(20, random_state=0)
        >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
        ...                               n_starts=2, random_state=0).fit(X)
        >>> bool(pop.score(X) == pop.score_samples(X).mean())
        True
        """
        return float(np.mean(self.score_samples(X)))

    def predict(self, X):
        """Individual parameter estimates given the fitted population.

        Conditional means ``E[phi_i | y_i, theta]`` by self-normalised
        importance weights of the posterior draws (keyed by individual: a
        row does not depend on the other rows of ``X``).

        Parameters
        ----------
        X : DataFrame
            Individuals table, with the columns seen in fit.

        Returns
        -------
        DataFrame
            Indexed like ``X``, one column per parameter.

        Examples
        --------
        >>> from sknlme.models import LinearGaussian
        >>> from sknlme.posterior import ExactGaussianPosterior
        >>> from sknlme.population import NLMEPopulationEstimator
        >>> model = LinearGaussian(n_params=1, sigma=0.3)
        >>> X, _ = model.simulate(20, random_state=0)
        >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
        ...                               n_starts=2, random_state=0).fit(X)
        >>> list(pop.predict(X).columns)
        ['theta0']
        """
        means = self._eval_objective(X).conditional_means(self.x_full_)
        return pd.DataFrame(means, index=X.index, columns=list(self.posterior.model.param_names))

    def summary(self, confidence=0.95):
        """Parameter table like NONMEM's or Monolix's output (see ``PopulationFitResult.summary``).

        Parameters
        ----------
        confidence : float, default=0.95
            Level of the Wald intervals.

        Returns
        -------
        DataFrame
            ``parameter, kind, estimate, se, rse_percent, ci_lower, ci_upper, fixed``.

        Examples
        --------
        >>> from sknlme.models import LinearGaussian
        >>> from sknlme.posterior import ExactGaussianPosterior
        >>> from sknlme.population import NLMEPopulationEstimator
        >>> model = LinearGaussian(n_params=1, sigma=0.3)
        >>> X, _ = model.simulate(20, random_state=0)
        >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
        ...                               n_starts=2, random_state=0).fit(X)
        >>> list(pop.summary()["kind"])
        ['fixed effect', 'SD', 'variance']
        """
        check_is_fitted(self)
        return self.result_.summary(confidence)

    def profile(self, params=None, confidence=0.95, optimizer=None, profile_options=None):
        """Profile likelihoods and confidence intervals (see :func:`profile_fit`).

        Returns
        -------
        DataFrame
            ``parameter, estimate, lower, upper``; the pyPESTO result is kept as
            ``profile_result_`` (for :func:`sknlme.plotting.plot_profiles`).
            ``result_.profile(...)`` returns both without touching the estimator.

        Examples
        --------
        >>> from sknlme.models import LinearGaussian
        >>> from sknlme.posterior import ExactGaussianPosterior
        >>> from sknlme.population import NLMEPopulationEstimator
        >>> model = LinearGaussian(n_params=1, sigma=0.3)
        >>> X, _ = model.simulate(30, random_state=0)
        >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
        ...                               n_starts=2, random_state=0).fit(X)
        >>> table = pop.profile(["theta0"])
        >>> bool(table.lower[0] < table.estimate[0] < table.upper[0])
        True
        """
        check_is_fitted(self)
        prof = self.result_.profile(params, confidence, optimizer, profile_options)
        self.profile_result_ = prof.result
        return prof.table

    # ------------------------------------------------------ pharmacometric tables
    def parameter_table(self, confidence=0.95):
        """Parameters on the estimation and the natural scale (see :func:`parameter_table`).

        Parameters
        ----------
        confidence : float, default=0.95
            Level of the Wald and the profile intervals.

        Returns
        -------
        DataFrame
            With ``attrs`` ``ofv``, ``aic``, ``bic``, ``correlation`` and
            ``condition_number``; the profile-interval columns are filled from
            the profiles of the last :meth:`profile` call on this fit (NaN
            for parameters not profiled, all NaN before any).

        Examples
        --------
        >>> from sknlme.models import LinearGaussian
        >>> from sknlme.posterior import ExactGaussianPosterior
        >>> from sknlme.population import NLMEPopulationEstimator
        >>> model = LinearGaussian(n_params=1, sigma=0.3)
        >>> X, _ = model.simulate(20, random_state=0)
        >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
        ...                               n_starts=2, random_state=0).fit(X)
        >>> bool(pop.parameter_table().attrs["ofv"] == -2 * pop.loglik_)
        True
        """
        check_is_fitted(self)
        profile = getattr(self, "profile_result_", None)
        if profile is not None:  # profiles of an earlier fit start elsewhere: not these
            start = np.asarray(profile.optimize_result.list[0]["x"], dtype=float)
            if start.shape != self.result_.x.shape or not np.allclose(start, self.result_.x):
                profile = None
        return parameter_table(
            self.result_, self.posterior.model.error_params, confidence, profile=profile
        )

    def observation_table(self, X, n_simulations=1000, random_state=None):
        """ID, TIME, DV, PRED, IPRED, RES, IWRES, WRES, CWRES, NPDE (see :func:`observation_table`).

        Parameters
        ----------
        X : DataFrame
            Individuals table.
        n_simulations : int, default=1000
            Replicates for NPDE (0: none).
        random_state : int, RandomState or None, default=None

        Returns
        -------
        DataFrame

        Examples
        --------
        >>> from sknlme.models import LinearGaussian
        >>> from sknlme.posterior import ExactGaussianPosterior
        >>> from sknlme.population import NLMEPopulationEstimator
        >>> model = LinearGaussian(n_params=1, sigma=0.3)
        >>> X, _ = model.simulate(10, random_state=0)
        >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
        ...                               n_starts=2, random_state=0).fit(X)
        >>> len(pop.observation_table(X, n_simulations=0))
        50
        """
        check_is_fitted(self)
        return observation_table(self, X, n_simulations, random_state)

    def individual_table(self, X):
        """Covariates, EBEs and ETAs per individual (see :func:`individual_table`).

        Parameters
        ----------
        X : DataFrame
            Individuals table.

        Returns
        -------
        DataFrame

        Examples
        --------
        >>> from sknlme.models import LinearGaussian
        >>> from sknlme.posterior import ExactGaussianPosterior
        >>> from sknlme.population import NLMEPopulationEstimator
        >>> model = LinearGaussian(n_params=1, sigma=0.3)
        >>> X, _ = model.simulate(10, random_state=0)
        >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
        ...                               n_starts=2, random_state=0).fit(X)
        >>> pop.individual_table(X).shape
        (10, 2)
        """
        check_is_fitted(self)
        return individual_table(self, X)

    def shrinkage(self, X, observations=None):
        """Eta- and epsilon-shrinkage in percent (see :func:`shrinkage`).

        Parameters
        ----------
        X : DataFrame
            Individuals table.
        observations : DataFrame, default=None
            :meth:`observation_table` of ``X``, to reuse its IWRES.

        Returns
        -------
        DataFrame

        Examples
        --------
        >>> from sknlme.models import LinearGaussian
        >>> from sknlme.posterior import ExactGaussianPosterior
        >>> from sknlme.population import NLMEPopulationEstimator
        >>> model = LinearGaussian(n_params=1, sigma=0.3)
        >>> X, _ = model.simulate(10, random_state=0)
        >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
        ...                               n_starts=2, random_state=0).fit(X)
        >>> list(pop.shrinkage(X).columns)
        ['omega', 'sd', 'shrinkage_percent']
        """
        check_is_fitted(self)
        return shrinkage(self, X, observations)

    def sample_posterior(self, prior=None, n_samples=10_000, random_state=None, **kwargs):
        """MCMC over the population parameters (see :func:`sample_population`).

        Returns
        -------
        PopulationPosterior
            Also kept as ``posterior_`` (and its pyPESTO result as
            ``sample_result_``, for :func:`save_results`).

        Examples
        --------
        >>> from sknlme.models import LinearGaussian
        >>> from sknlme.posterior import ExactGaussianPosterior
        >>> from sknlme.population import NLMEPopulationEstimator
        >>> model = LinearGaussian(n_params=1, sigma=0.3)
        >>> X, _ = model.simulate(50, random_state=0)
        >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
        ...                               n_starts=2, random_state=0).fit(X)
        >>> post = pop.sample_posterior(n_samples=1000, random_state=0, min_ess=0)
        >>> list(post.samples.columns)
        ['theta0', 'log_var(theta0)']
        """
        from ._bayesian import sample_population

        check_is_fitted(self)
        post = sample_population(self.result_, prior, n_samples, random_state, **kwargs)
        self.posterior_, self.sample_result_ = post, post.result
        return post
