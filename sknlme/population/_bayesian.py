"""Bayesian population inference: MCMC over the population parameters on the cached draws.

The population objective of a fit (the negative log-likelihood of the free
population parameters on the fit's posterior draws, common random numbers)
plus a prior on those parameters is a negative log-posterior; pyPESTO's
adaptive Metropolis sampler (as in the original research code) samples it,
started at the maximum-likelihood estimate. Burn-in comes from pyPESTO's
sequential Geweke test, the effective sample size from pyPESTO's (Sokal)
autocorrelation estimate.

pyPESTO's samplers draw from NumPy's *global* random generator; the chain is
run with that generator seeded from ``random_state`` and its state is
restored afterwards (so the caller's global stream is untouched; do not
sample from several threads at once).
"""

from __future__ import annotations

import contextlib
import logging
import warnings

import numpy as np
import pandas as pd
import pypesto
import pypesto.sample
from pypesto.C import NORMAL
from pypesto.objective import AggregatedObjective, NegLogParameterPriors
from pypesto.objective.priors import get_parameter_prior_dict
from pypesto.sample.auto_correlation import autocorrelation_sokal
from pypesto.sample.geweke_test import calculate_zscore
from sklearn.utils import check_random_state

from ._multistart import PypestoObjective
from ._summary import derived_quantities

__all__ = ["PopulationPosterior", "normal_prior", "sample_population"]

DEFAULT_PRIOR_SD = 10.0


def normal_prior(x_names, prior=None, default_sd=DEFAULT_PRIOR_SD):
    """Independent normal priors on the free population parameters, as pyPESTO priors.

    The default, ``N(0, default_sd**2)`` on every free parameter *on the
    scale it is estimated on* (fixed and covariate effects on the model's
    unconstrained, e.g. log, scale; log-variances or log-Cholesky entries of
    the random effects), is weakly informative: with ``default_sd = 10`` it
    spans random-effect SDs from ``exp(-5)`` to ``exp(5)`` within one prior SD
    of the log-variance and adds ``1 / 100`` to the curvature of the negative
    log-likelihood (negligible unless a standard error is of order 10).

    Parameters
    ----------
    x_names : list of str
        Free population parameters (``estimator.x_names_``).
    prior : dict, default=None
        ``name -> (mean, sd)`` for the parameters that get their own normal
        prior; the others get the default.
    default_sd : float, default=10.0
        SD of the default prior (mean 0).

    Returns
    -------
    pypesto.objective.NegLogParameterPriors

    Examples
    --------
    >>> from sknlme.population import normal_prior
    >>> prior = normal_prior(["a", "log_var(a)"], {"a": (1.0, 0.5)})
    >>> [p["parameters"] for p in prior.prior_list]
    [[1.0, 0.5], [0.0, 10.0]]
    """
    x_names = list(x_names)
    prior = {} if prior is None else dict(prior)
    unknown = sorted(set(prior) - set(x_names))
    if unknown:
        raise ValueError(f"prior: {unknown} are not free population parameters {x_names}")
    if not (np.isfinite(default_sd) and default_sd > 0):
        raise ValueError(f"default_sd must be positive and finite, got {default_sd}")
    terms = []
    for i, name in enumerate(x_names):
        try:
            mean, sd = (float(v) for v in prior.get(name, (0.0, default_sd)))
        except (TypeError, ValueError) as err:
            raise ValueError(f"prior[{name!r}] must be a (mean, sd) pair") from err
        if not (np.isfinite(mean) and np.isfinite(sd) and sd > 0):
            raise ValueError(f"prior[{name!r}] = ({mean}, {sd}): need a finite mean and sd > 0")
        terms.append(get_parameter_prior_dict(i, NORMAL, [mean, sd]))
    return NegLogParameterPriors(terms, x_names=x_names)


@contextlib.contextmanager
def _seeded_global_numpy(seed):
    """Run a block with NumPy's global generator seeded, then restore its state."""
    state = np.random.get_state()  # noqa: NPY002 - pyPESTO draws from the global RNG
    np.random.seed(seed)  # noqa: NPY002
    try:
        yield
    finally:
        np.random.set_state(state)  # noqa: NPY002


def _initial_covariance(cov_x):
    """The proposal's start: the inverse Hessian when it is finite and positive definite."""
    cov = np.asarray(cov_x, dtype=float)
    if np.all(np.isfinite(cov)):
        try:
            np.linalg.cholesky(cov)
            return cov
        except np.linalg.LinAlgError:
            pass
    return None  # pyPESTO's default (identity)


def chain_diagnostics(chain, burn_in, zscore=2.0):
    """Geweke z-scores, p-values and effective sample sizes of a chain after burn-in.

    Parameters
    ----------
    chain : ndarray of shape (n_iter, n_x)
    burn_in : int
    zscore : float, default=2.0
        Geweke threshold (the one the burn-in used).

    Returns
    -------
    z, p, ess : ndarray of shape (n_x,) each
        Geweke z-scores (first 10 % against last 50 %) and p-values of the
        chain after burn-in, and ``n / (1 + tau_j)`` with ``tau_j`` Sokal's
        integrated autocorrelation time (pyPESTO's ESS, per parameter).
    """
    kept = chain[burn_in:]
    n_x = chain.shape[1]
    if len(kept) < 20:  # too short for the test or for the autocorrelation
        return np.full(n_x, np.nan), np.full(n_x, np.nan), np.zeros(n_x)
    z, p = calculate_zscore(kept)
    tau = autocorrelation_sokal(kept)
    ess = np.where(np.ptp(kept, axis=0) > 0, len(kept) / (1.0 + tau), 0.0)  # 0: never moved
    return np.ravel(z).astype(float), np.ravel(p).astype(float), ess


def _natural(samples, layout):
    """Derived quantities (effects, SDs, variances, correlations) of each sample."""
    rows = [derived_quantities(layout.unpack(x), layout) for x in samples]
    names, kinds = ([[r[k] for r in rows[0]] for k in (0, 1)]) if rows else ([], [])
    table = pd.DataFrame([[v for _, _, v in r] for r in rows], columns=names, dtype=float)
    table.attrs["kinds"] = dict(zip(names, kinds, strict=True))
    return table


class PopulationPosterior:
    """Posterior draws of the population parameters and their diagnostics.

    Build it with :func:`sample_population` (or
    ``NLMEPopulationEstimator.sample_posterior``).

    Attributes
    ----------
    samples : DataFrame
        Draws after burn-in, one column per free parameter (``x_names``).
    natural : DataFrame
        The same draws as reported quantities: fixed and covariate effects,
        random-effect SDs (``SD(p)``), variances and correlations.
    trace : DataFrame
        The whole chain, burn-in included (``n_samples + 1`` rows: the start first).
    burn_in : int
        Iterations discarded (sequential Geweke test).
    converged : bool
        False when the Geweke test found no burn-in (then ``samples`` are the
        second half of the chain).
    geweke_z, geweke_p : Series
        Geweke z-scores and p-values of ``samples`` per parameter.
    acceptance_rate : float
        Fraction of proposals accepted.
    ess : Series
        Effective sample size per parameter; ``ess.min()`` is pyPESTO's ESS.
    result : pypesto.Result
        The pyPESTO result with ``sample_result`` (burn-in and ESS filled in),
        for pyPESTO's plots and :func:`save_results`.

    Examples
    --------
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme.population import NLMEPopulationEstimator, sample_population
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(50, random_state=0)
    >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
    ...                               n_starts=2, random_state=0).fit(X)
    >>> post = sample_population(pop.result_, n_samples=1000, random_state=0, min_ess=0)
    >>> list(post.samples.columns), list(post.natural.columns)
    (['theta0', 'log_var(theta0)'], ['theta0', 'SD(theta0)', 'Var(theta0)'])
    """

    def __init__(self, *, result, x_names, layout, burn_in, converged, zscore=2.0):
        chain = np.asarray(result.sample_result.trace_x[0], dtype=float)
        self.result = result
        self.x_names = list(x_names)
        self.trace = pd.DataFrame(chain, columns=self.x_names)
        self.burn_in = int(burn_in)
        self.converged = bool(converged)
        start = self.burn_in if converged else len(chain) // 2
        self.samples = self.trace.iloc[start:].reset_index(drop=True)
        z, p, ess = chain_diagnostics(chain, start, zscore)
        self.geweke_z = pd.Series(z, index=self.x_names, name="geweke_z")
        self.geweke_p = pd.Series(p, index=self.x_names, name="geweke_p")
        self.ess = pd.Series(ess, index=self.x_names, name="ess")
        moved = np.any(np.diff(chain, axis=0) != 0, axis=1)
        self.acceptance_rate = float(moved.mean()) if len(moved) else np.nan
        self.natural = _natural(self.samples.to_numpy(), layout)

    def summary(self, interval=0.95):
        """Posterior mean, SD and equal-tailed interval of every reported quantity.

        Parameters
        ----------
        interval : float, default=0.95
            Probability of the central interval.

        Returns
        -------
        DataFrame
            ``parameter, kind, mean, sd, lower, upper``: the quantities of
            ``natural`` (SDs and variances on their natural scale), then the
            other free parameters (kind ``"free"``: log-variances, ...).

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
        >>> table = post.summary()
        >>> list(table.parameter)
        ['theta0', 'SD(theta0)', 'Var(theta0)', 'log_var(theta0)']
        >>> bool((table.lower < table["mean"]).all() and (table["mean"] < table.upper).all())
        True
        """
        if not 0 < interval < 1:
            raise ValueError(f"interval must be in (0, 1), got {interval}")
        q = [(1 - interval) / 2, (1 + interval) / 2]
        kinds = self.natural.attrs["kinds"]
        free = self.samples.drop(columns=[n for n in self.x_names if n in kinds])
        rows = [
            (name, kinds.get(name, "free"), col.mean(), col.std(ddof=1), *col.quantile(q))
            for part in (self.natural, free)
            for name, col in part.items()
        ]
        return pd.DataFrame(rows, columns=["parameter", "kind", "mean", "sd", "lower", "upper"])


def _check_prior(prior, x_names):
    if prior is None or isinstance(prior, dict):
        return normal_prior(x_names, prior)
    if isinstance(prior, NegLogParameterPriors):
        indices = sorted(p["index"] for p in prior.prior_list)
        if any(i < 0 or i >= len(x_names) for i in indices) or len(set(indices)) != len(indices):
            raise ValueError(
                f"prior: indices {indices} must be distinct positions in x_names {x_names}"
            )
        return prior
    raise TypeError(
        "prior must be None, a dict name -> (mean, sd) or a pypesto NegLogParameterPriors, "
        f"got {type(prior).__name__}"
    )


def _warn_diagnostics(post, min_ess, zscore):
    if not post.converged:
        warnings.warn(
            "the Geweke test found no burn-in: the chain has not converged (samples are its "
            "second half; take more n_samples, or check the prior and the fit)",
            RuntimeWarning,
            stacklevel=3,
        )
    bad = list(post.geweke_z.index[np.abs(post.geweke_z) > zscore])
    if post.converged and bad:
        warnings.warn(
            f"Geweke test after burn-in fails (|z| > {zscore}) for {bad}: their draws may not "
            "be stationary; take more n_samples",
            RuntimeWarning,
            stacklevel=3,
        )
    low = post.ess[post.ess < min_ess]
    if len(low):
        shown = ", ".join(f"{k!r} ({v:.0f})" for k, v in low.items())
        warnings.warn(
            f"effective sample size below {min_ess} for {shown}: posterior means and "
            "intervals of these parameters are noisy; take more n_samples",
            RuntimeWarning,
            stacklevel=3,
        )


def sample_population(
    fit,
    prior=None,
    n_samples=10_000,
    random_state=None,
    sampler=None,
    zscore=2.0,
    min_ess=100,
):
    """MCMC over the free population parameters of a fit, on its cached draws.

    Samples ``exp(loglik(x)) * prior(x)`` with pyPESTO's sampler, where
    ``loglik`` is the fit's objective (``fit.objective``: the fit draws, so
    the target is deterministic), restricted to the fit's bounds, from the
    estimate ``fit.x``. The adaptive Metropolis proposal starts from the
    inverse Hessian ``fit.covariance_x`` (the identity when that is not
    positive definite).

    Parameters
    ----------
    fit : PopulationFitResult
        A fit (``estimator.result_``).
    prior : dict or pypesto.objective.NegLogParameterPriors, default=None
        Prior on ``fit.x_names``: None for the weakly-informative default of
        :func:`normal_prior`, a dict ``name -> (mean, sd)`` (normal priors;
        the default for the others), or pyPESTO priors indexed by position in
        ``fit.x_names`` (parameters without one get a flat prior).
    n_samples : int, default=10000
        Chain length (after the start).
    random_state : int, RandomState instance or None, default=None
        Seeds every draw of the chain.
    sampler : pypesto.sample.InternalSampler, default=None
        A pyPESTO sampler; ``AdaptiveMetropolisSampler`` when None.
    zscore : float, default=2.0
        Geweke threshold, for the burn-in and the warning.
    min_ess : float, default=100
        Warn, naming them, about parameters with fewer effective samples.

    Returns
    -------
    PopulationPosterior

    Examples
    --------
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme.population import NLMEPopulationEstimator, sample_population
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(50, random_state=0)
    >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
    ...                               n_starts=2, random_state=0).fit(X)
    >>> a = sample_population(pop.result_, n_samples=500, random_state=1, min_ess=0)
    >>> b = sample_population(pop.result_, n_samples=500, random_state=1, min_ess=0)
    >>> a.trace.equals(b.trace), 0 < a.acceptance_rate < 1
    (True, True)
    """
    n_samples = int(n_samples)
    if n_samples < 100:
        raise ValueError(f"n_samples must be at least 100 (Geweke test), got {n_samples}")
    if not zscore > 0:
        raise ValueError(f"zscore must be positive, got {zscore}")
    x_names = list(fit.x_names)
    prior = _check_prior(prior, x_names)
    lb, ub = fit.objective.bounds
    likelihood = PypestoObjective(fit.objective, x_names)
    problem = pypesto.Problem(
        AggregatedObjective([likelihood, prior]),
        lb=lb,
        ub=ub,
        x_names=x_names,
        x_priors_defs=prior,
        copy_objective=False,
    )
    if sampler is None:
        cov0 = _initial_covariance(fit.covariance_x)
        sampler = pypesto.sample.AdaptiveMetropolisSampler({"cov0": cov0, "show_progress": False})
    seed = check_random_state(random_state).randint(np.iinfo(np.int32).max)
    x0 = np.clip(np.asarray(fit.x, dtype=float), lb, ub)
    with _seeded_global_numpy(seed):
        result = pypesto.sample.sample(problem, n_samples, sampler=sampler, x0=x0)
    logger = logging.getLogger("pypesto.sample.geweke_test")
    level = logger.level
    logger.setLevel(logging.ERROR)  # its "not converged" message: we warn instead
    try:
        burn_in = int(pypesto.sample.geweke_test(result, zscore=zscore))
    finally:
        logger.setLevel(level)
    converged = burn_in < result.sample_result.trace_x.shape[1]
    post = PopulationPosterior(
        result=result,
        x_names=x_names,
        layout=fit.layout,
        burn_in=burn_in,
        converged=converged,
        zscore=zscore,
    )
    result.sample_result.effective_sample_size = float(post.ess.min())
    _warn_diagnostics(post, min_ess, zscore)
    return post
