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
import copy
import logging
import warnings

import numpy as np
import pypesto
import pypesto.sample
from pypesto.C import NORMAL
from pypesto.objective import AggregatedObjective, NegLogParameterPriors
from pypesto.objective.priors import get_parameter_prior_dict
from sklearn.utils import check_random_state

from ._multistart import PypestoObjective
from ._posterior_draws import PopulationPosterior

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
    n_chains=1,
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
    n_chains : int, default=1
        Independent chains, each of ``n_samples``, each with its own seed. The
        first starts at ``fit.x``, the others at ``fit.x`` plus a draw from
        ``N(0, fit.covariance_x)`` (clipped to the bounds; ``fit.x`` when that
        covariance is not positive definite), so R-hat compares chains from
        different starts. All share the largest burn-in of their Geweke tests;
        ``samples`` stacks their draws, chain after chain, and ``ess`` adds the
        chains' ESS. R-hat (``summary``, ``to_inference_data``) needs two or more.

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
    if int(n_chains) < 1 or int(n_chains) != n_chains:
        raise ValueError(f"n_chains must be a positive integer, got {n_chains}")
    n_chains = int(n_chains)
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
    cov0 = _initial_covariance(fit.covariance_x)
    rng = check_random_state(random_state)
    seeds = [rng.randint(np.iinfo(np.int32).max) for _ in range(n_chains)]
    x0 = np.clip(np.asarray(fit.x, dtype=float), lb, ub)
    starts = [x0]
    for _ in range(n_chains - 1):
        shift = 0.0 if cov0 is None else rng.multivariate_normal(np.zeros(x0.size), cov0)
        starts.append(np.clip(x0 + shift, lb, ub))
    logger = logging.getLogger("pypesto.sample.geweke_test")
    results, burn_ins = [], []
    for seed, start in zip(seeds, starts, strict=True):
        chain_sampler = copy.deepcopy(sampler) if sampler is not None else None
        if chain_sampler is None:
            options = {"cov0": cov0, "show_progress": False}
            chain_sampler = pypesto.sample.AdaptiveMetropolisSampler(options)
        with _seeded_global_numpy(seed):
            result = pypesto.sample.sample(problem, n_samples, sampler=chain_sampler, x0=start)
        level = logger.level
        logger.setLevel(logging.ERROR)  # its "not converged" message: we warn instead
        try:
            burn_ins.append(int(pypesto.sample.geweke_test(result, zscore=zscore)))
        finally:
            logger.setLevel(level)
        results.append(result)
    burn_in = max(burn_ins)
    converged = burn_in < results[0].sample_result.trace_x.shape[1]
    post = PopulationPosterior(
        result=results,
        x_names=x_names,
        layout=fit.layout,
        burn_in=burn_in,
        converged=converged,
        zscore=zscore,
    )
    for result in results:
        result.sample_result.effective_sample_size = float(post.ess.min())
    _warn_diagnostics(post, min_ess, zscore)
    return post
