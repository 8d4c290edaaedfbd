"""Importance-sampling estimate of the exact NLME marginal likelihood.

The amortized objective (:class:`PopulationObjective`) re-weights draws of
``q(phi | y_i)``; it is fast but the network's errors enter the likelihood.
Here the model's exact observation likelihood is integrated instead, as
NONMEM's and Monolix's importance sampling do, so that log-likelihoods,
AIC and BIC compare with theirs:

``L_i(theta) = E_g[ p(y_i | psi, phi_fix) N(psi; m_i, Psi) / g_i(psi) ]``,

over the random effects ``psi`` only; parameters without a random effect
take their population value ``m_i`` exactly (no variance floor). The proposal
``g_i`` is a multivariate Student t (5 degrees of freedom, scale inflated by
1.5) centred on the conditional distribution of ``psi`` given ``y_i`` and
``theta``, from a Gaussian approximation of the likelihood that the network
provides: with ``q(psi | y_i) ~ N(mu_q, S_q)`` (moments of its draws) and the
training prior ``N(mu_0, S_0)``, the likelihood is ``~ N`` with precision
``Lam_i = S_q^-1 - S_0^-1`` and shift ``eta_i = S_q^-1 mu_q - S_0^-1 mu_0``
(for conditional-mode proposals, see ``_conditional``, the shift follows the
parameters without random effect through the likelihood's curvature between
them), so ``g_i`` has precision ``Lam_i + Psi^-1`` and mean
``(Lam_i + Psi^-1)^-1 (eta_i + Psi^-1 m_i)``; a fifth of the draws come
from the population distribution ``N(m_i, Psi)`` itself, a defensive mixture
that bounds every weight. The proposal follows ``theta``
(a random effect whose variance shrinks to zero is proposed at its mean),
while its standardised draws are fixed (common random numbers), so the
estimate is a smooth, deterministic function of ``theta``. Its gradient here is
by central differences in one batch of ``2 n_x`` parameter vectors; the fit
optimises :class:`FixedProposalSurrogate` instead (proposals held at a centre,
analytic gradient, re-centred until the optimum stops moving).
"""

from __future__ import annotations

import copy

import numpy as np
from scipy.special import gammaln, logsumexp
from sklearn.utils import check_random_state

from ..simulate import draw_seed, keyed_standard_normal
from ._base import BaseObjective, population_means
from ._central import CentralGradient
from ._importance_general import general_proposal
from ._proposal import (
    conditioned_shift,
    keyed_t_draws,
    likelihood_gaussians,
    posterior_likelihoods,
    t_proposal,
)
from ._sharding import RowShards
from ._weighted import WeightedDraws

__all__ = ["ImportanceObjective", "likelihood_gaussians"]

_BATCH_DRAWS = 2**20  # draws per likelihood call when batching parameter vectors
# Share of the draws from the population distribution itself (a defensive mixture).
# Measured on theophylline with 4 of 11 samples (Laplace proposals, banana-shaped
# posteriors): without it some individuals kept an ESS of 160 of 300,000 draws and
# the estimate of log ka was 0.07 from the exact maximum.
DEFENSIVE_FRACTION = 0.2
_POP_SALT = 0x0DEF_E2CE


class ImportanceObjective(CentralGradient, WeightedDraws, BaseObjective):
    """Negative importance-sampling log-likelihood of the population parameters.

    Same parameter layout, bounds and covariates as the amortized objective
    ``base`` (so estimates, profiles and summaries carry over), with the exact
    likelihood of ``model`` (see the module docstring for the estimator).

    Parameters
    ----------
    base : PopulationObjective
        Amortized objective on posterior draws of the same individuals (its
        draws give the likelihood approximations, its layout the parameters).
    model : Model
        The individual model; needs ``has_likelihood``.
    X : Study or DataFrame
        The individuals, in the row order of ``base`` (a DataFrame is prepared
        with ``model.prepare``).
    n_draws : int
        Proposal draws per individual.
    random_state : int, RandomState or None, default=None
        Seeds the standardised proposal draws. They are keyed by individual:
        an individual's draws depend only on the seed and its ID (normals from
        :func:`sknlme.simulate.keyed_standard_normal`; the t mixing variable
        ``chi2(df)`` as a sum of ``df`` squared keyed normals for an integer
        ``df``, else by the inverse chi-square CDF of one keyed normal).
    df : float, default=5.0
        Degrees of freedom of the Student t proposal.
    inflation : float, default=1.5
        Factor on the proposal's scale.
    rel_step : float, default=1e-5
        Relative step of the central-difference gradient.

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme.population import ImportanceObjective, PopulationObjective, amortized_offsets
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(5, random_state=0)
    >>> draws = ExactGaussianPosterior(model).fit().sample(X, 50, random_state=0)
    >>> base = PopulationObjective(draws, amortized_offsets(draws, model.prior_mean,
    ...                                                     model.prior_cov), ["theta0"])
    >>> obj = ImportanceObjective(base, model, X, 100, random_state=0)
    >>> x = obj.pack(beta=[0.0], cov=[[1.0]])
    >>> exact = model.marginal_loglik(X, np.zeros(1), np.eye(1))
    >>> bool(np.allclose(obj.individual_loglik(x), exact, atol=0.1))
    True
    """

    exact_likelihood = True

    def __init__(
        self, base, model, X, n_draws, random_state=None, df=5.0, inflation=1.5, rel_step=1e-5
    ):
        if not model.has_likelihood:
            raise ValueError(f"{model!r} has no observation likelihood")
        study = model.prepare(X)
        if len(study) != base.n:
            raise ValueError(f"X has {len(study)} individuals, the draws {base.n}")
        self.layout = base.layout
        self.covariates = base.covariates
        self.group_codes = base.group_codes
        self.model = model
        self.df, self.inflation, self.rel_step = float(df), float(inflation), float(rel_step)
        names = self.layout.param_names
        self.re = np.array([names.index(p) for p in self.layout.random_effects], dtype=int)
        self.fe = np.array([j for j in range(len(names)) if j not in set(self.re)], dtype=int)
        self._padded = study.padded
        self._covs = study.covariates
        self._ids = study.ids
        self._keys = study.keys
        mean = np.asarray(model.prior_mean, dtype=float)
        cov = np.asarray(model.prior_cov, dtype=float)
        cov = np.diag(cov) if cov.ndim == 1 else cov
        self._prior_full = (mean, cov)  # the training prior
        if self.re.size:
            # a box prior is flat inside: likelihood precision = posterior precision
            flat = getattr(getattr(model, "prior", None), "kind", "normal") != "normal"
            prior_cov = None if flat else cov[np.ix_(self.re, self.re)]
            samples = base.samples[:, :, self.re]
            self._lam, self._eta = likelihood_gaussians(samples, mean[self.re], prior_cov)
            # the network's draws carry each individual's own value of the others: no block
            self._lam_rf = np.zeros((base.n, self.re.size, self.fe.size))
        self.n, self.d = base.n, len(names)
        self.shards = RowShards(None)
        self._draw_base(n_draws, random_state)

    def _draw_base(self, n_draws, random_state):
        if int(n_draws) < 1:
            raise ValueError(f"n_draws must be >= 1, got {n_draws}")
        K = int(n_draws) if self.re.size else 1
        seed = draw_seed(check_random_state(random_state))
        k_pop = int(round(DEFENSIVE_FRACTION * K)) if K >= 10 else 0
        self._std = keyed_t_draws(seed, self._keys, K - k_pop, self.re.size, self.df)
        z = keyed_standard_normal(seed ^ _POP_SALT, self._keys, k_pop * self.re.size)
        self._pop_std = z.reshape(len(self._keys), k_pop, self.re.size)
        r, nu = self.re.size, self.df
        self._log_t0 = (
            gammaln((nu + r) / 2) - gammaln(nu / 2) - 0.5 * r * np.log(nu * np.pi)
        ) - 0.5 * (nu + r) * np.log1p(np.sum(self._std**2, axis=2) / nu)
        self.K = K
        self._cache = self._draws_cache = (None, None)
        self._shard_token = None

    @property
    def n_defensive(self):
        """Draws of each individual (the last ones) from the population distribution."""
        return self._pop_std.shape[1]

    def with_draws(self, n_draws, random_state=None):
        """The same objective on fresh proposal draws (``n_draws`` per individual).

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.models import LinearGaussian
        >>> from sknlme.posterior import ExactGaussianPosterior
        >>> from sknlme.population import ImportanceObjective, PopulationObjective
        >>> model = LinearGaussian(n_params=1, sigma=0.3)
        >>> X, _ = model.simulate(4, random_state=0)
        >>> draws = ExactGaussianPosterior(model).fit().sample(X, 20, random_state=0)
        >>> base = PopulationObjective(draws, np.zeros((4, 20)), ["theta0"])
        >>> ImportanceObjective(base, model, X, 10).with_draws(30, random_state=1).K
        30
        """
        new = copy.copy(self)
        new._draw_base(n_draws, random_state)
        return new

    def with_gaussians(self, rows, mean, cov, prior_inflation=1.0, prior=None, cross=None):
        """The same objective with the proposals of ``rows`` from Gaussian posteriors.

        ``N(mean, cov)`` (e.g. Laplace approximations) replace the draws' moments;
        same standardised draws. These posteriors are under the training prior with its
        covariance scaled by ``prior_inflation`` (see
        :func:`sknlme.population.laplace_approximations`), or under ``prior`` on the
        random effects: ``(mean (r,) or (len(rows), r), cov (r, r))``, the others held
        at ``cross[1]`` (len(rows), f), where the likelihood precision's block between
        the two is ``cross[0]`` (len(rows), r, f) (zero when None).

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.models import LinearGaussian
        >>> from sknlme.posterior import ExactGaussianPosterior
        >>> from sknlme.population import ImportanceObjective, PopulationObjective
        >>> model = LinearGaussian(n_params=1, sigma=0.3)
        >>> X, _ = model.simulate(4, random_state=0)
        >>> draws = ExactGaussianPosterior(model).fit().sample(X, 20, random_state=0)
        >>> base = PopulationObjective(draws, np.zeros((4, 20)), ["theta0"])
        >>> obj = ImportanceObjective(base, model, X, 2000, random_state=0)
        >>> mean, cov = model.exact_posterior(model.prepare(X))
        >>> new = obj.with_gaussians([0, 1, 2, 3], mean, cov)
        >>> x = obj.pack(beta=[0.0], cov=[[1.0]])
        >>> exact = model.marginal_loglik(X, np.zeros(1), np.eye(1))
        >>> bool(np.allclose(new.individual_loglik(x), exact, atol=0.05))
        True
        """
        rows = np.asarray(rows, dtype=np.intp).reshape(-1)
        new = copy.copy(self)
        if self.re.size and rows.size:
            if prior is None:  # all parameters free: the training prior, widened
                f = np.broadcast_to(np.asarray(prior_inflation, dtype=float), (self.d,))
                prior_cov = self._prior_full[1] * np.sqrt(np.outer(f, f))
                prior = (self._prior_full[0][self.re], prior_cov[np.ix_(self.re, self.re)])
            found = posterior_likelihoods(mean, cov, self.re, prior, cross)
            new._lam, new._eta, new._lam_rf = (
                a.copy() for a in (self._lam, self._eta, self._lam_rf)
            )
            new._lam[rows], new._eta[rows], new._lam_rf[rows] = found
        new._cache = new._draws_cache = (None, None)
        new._shard_token = None
        return new

    # ------------------------------------------------------------ evaluation
    def draws(self, x):
        """Proposal draws ``phi`` (n, K, d) at ``x`` and their log weights (n, K).

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.models import LinearGaussian
        >>> from sknlme.posterior import ExactGaussianPosterior
        >>> from sknlme.population import ImportanceObjective, PopulationObjective
        >>> model = LinearGaussian(n_params=1, sigma=0.3)
        >>> X, _ = model.simulate(4, random_state=0)
        >>> draws = ExactGaussianPosterior(model).fit().sample(X, 20, random_state=0)
        >>> base = PopulationObjective(draws, np.zeros((4, 20)), ["theta0"])
        >>> obj = ImportanceObjective(base, model, X, 50, random_state=0)
        >>> x = obj.pack(beta=[0.0], cov=[[1.0]])
        >>> [a.shape for a in obj.draws(x)]
        [(4, 50, 1), (4, 50)]
        """
        x = np.asarray(x, dtype=float).reshape(-1)
        key = x.tobytes()
        cached_key, cached = self._draws_cache  # the re-scoring asks for weights, then values
        if cached_key == key:
            return cached
        blocks = self.shards.blocks(self.n, max(1, _BATCH_DRAWS // self.K))
        parts = self.shards.map(_block_draws, self, blocks, x)
        out = tuple(np.concatenate(a) for a in zip(*parts, strict=True))
        self._draws_cache = (key, out)
        return out

    def _batch(self, xs, rows=None):
        """Draws ``phi`` (n, b, K, d) and log weights (b, n, K) at the rows of ``xs`` (b, n_x).

        Over the individuals at positions ``rows`` (all when None); the ``b * K``
        draws of each individual go to the model's likelihood in one call.
        """
        rows = np.arange(self.n) if rows is None else rows
        phi, log_ratio = self._proposal(xs, rows)
        n, b, K, d = phi.shape
        ratio = log_ratio.transpose(1, 0, 2).reshape(n, b * K)
        loglik = self._loglik(phi.reshape(n, b * K, d), rows, ratio)
        return phi, loglik.reshape(n, b, K).transpose(1, 0, 2) + log_ratio

    def _proposal(self, xs, rows):
        """Proposal draws ``phi`` (n, b, K, d) and ``log N(psi; m, Psi) - log g`` (b, n, K)."""
        if self.layout.general:  # grouped variances or t random effects
            return general_proposal(self, xs, rows)
        b, n, K, d = len(xs), rows.size, self.K, self.d
        covariates = None if self.covariates is None else self.covariates[rows]
        means = np.empty((b, n, d))
        psi_cov = np.empty((b, self.re.size, self.re.size))
        for t, x in enumerate(xs):
            beta, B, L = self.layout.factors(x)
            means[t] = population_means(beta, B, covariates)
            psi_cov[t] = (L @ L.T)[np.ix_(self.re, self.re)]
        phi = np.empty((n, b, K, d))
        phi[..., self.fe] = means[:, :, self.fe].transpose(1, 0, 2)[:, :, None, :]
        log_ratio = np.zeros((b, n, K))
        if self.re.size:
            psi, log_ratio = t_proposal(
                self._std[rows],
                self._log_t0[rows],
                self._lam[rows],
                self._eta_given(rows, means),
                means[:, :, self.re],
                psi_cov,
                self.inflation,
                self._pop_std[rows],
                self.df,
            )
            phi[..., self.re] = psi.transpose(1, 0, 2, 3)
        return phi, log_ratio

    def _eta_given(self, rows, means):
        """Likelihood shifts of individuals ``rows`` given the others at ``means`` (b, n, d)."""
        return conditioned_shift(self._eta[rows], self._lam_rf[rows], means[:, :, self.fe])

    def _loglik(self, flat, rows, ratio):
        """The model's log-likelihoods (n, M) of draws ``flat`` (n, M, d) of individuals ``rows``.

        ``ratio`` (n, M) are the draws' log importance ratios (see below).
        """
        whole = rows.size == self.n
        padded = self._padded if whole else self._padded.take(rows)
        covs = self._covs if whole or self._covs is None else self._covs.iloc[rows]
        loglik = self.model.log_likelihood_padded(flat, padded, covs)
        # a NaN likelihood where the population density is below e^-700 of the
        # proposal's (a t tail draw hundreds of SDs out, e.g. log ka = 1368, where
        # the kernel's ka / (ka - ke) is inf / inf) has a zero weight whatever it
        # is, as a Gaussian likelihood is bounded; anywhere else it is an error
        negligible = np.isnan(loglik) & (ratio < -700.0)
        loglik = np.where(negligible, -np.inf, loglik)
        if np.isnan(loglik).any():
            i, k = np.argwhere(np.isnan(loglik))[0]
            raise FloatingPointError(
                f"the likelihood of individual {self._ids[rows[i]]!r} is NaN at phi = {flat[i, k]}"
            )
        return loglik

    def _values(self, xs):
        """Negative log-likelihoods at the rows of ``xs`` (b, n_x), in blocks of bounded size.

        Blocks of at most ``_BATCH_DRAWS`` draws (vectors, or individuals); the sum is
        taken over all at once: the value depends neither on blocks nor ``shards``.
        """
        size = max(1, _BATCH_DRAWS // (self.n * self.K))
        terms = np.empty((len(xs), self.n))
        for s in range(0, len(xs), size):
            group = xs[s : s + size]
            blocks = self.shards.blocks(self.n, max(1, _BATCH_DRAWS // (self.K * len(group))))
            parts = self.shards.map(_block_terms, self, blocks, group)
            for rows, part in zip(blocks, parts, strict=True):
                terms[s : s + size, rows] = part
        return -terms.sum(axis=1)

    def __call__(self, x):
        """Negative log-likelihood at free ``x``.

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.models import LinearGaussian
        >>> from sknlme.posterior import ExactGaussianPosterior
        >>> from sknlme.population import ImportanceObjective, PopulationObjective
        >>> model = LinearGaussian(n_params=1, sigma=0.3)
        >>> X, _ = model.simulate(4, random_state=0)
        >>> draws = ExactGaussianPosterior(model).fit().sample(X, 20, random_state=0)
        >>> base = PopulationObjective(draws, np.zeros((4, 20)), ["theta0"])
        >>> obj = ImportanceObjective(base, model, X, 50, random_state=0)
        >>> x = obj.pack(beta=[0.0], cov=[[1.0]])
        >>> bool(np.isfinite(obj(x)))
        True
        """
        x = np.asarray(x, dtype=float).reshape(-1)
        key = x.tobytes()
        if self._cache[0] == key:
            return self._cache[1]
        if not np.all(np.isfinite(x)):
            return np.nan
        if self._draws_cache[0] == key:
            log_w = self._draws_cache[1][1]
            value = float(-np.sum(logsumexp(log_w, axis=1) - np.log(self.K)))
        else:
            value = float(self._values(x[None])[0])
        self._cache = (key, value)
        return value


def _block_terms(objective, rows, xs):
    """Per-individual ``log L_i`` (b, n_rows) at the rows of ``xs``, for individuals ``rows``."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        log_w = objective._batch(xs, rows)[1]
        return logsumexp(log_w, axis=2) - np.log(objective.K)


def _block_draws(objective, rows, x):
    """Draws (n_rows, K, d) and log weights (n_rows, K) at ``x`` for individuals ``rows``."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        phi, log_w = objective._batch(x[None], rows)
    return phi[:, 0], log_w[0]
