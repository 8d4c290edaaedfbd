"""The importance likelihood with its proposals held fixed: an analytic-gradient surrogate.

:class:`ImportanceObjective` moves its proposal draws with ``theta``, so each
gradient costs ``2 n_x + 1`` passes of the model's likelihood over all draws.
Held at a centre ``theta_c`` instead, the draws ``psi_ik`` of the random
effects and their proposal densities ``g_ik`` are fixed, and the same
importance estimate at any ``theta``,

``log L_i(theta) = logsumexp_k [l_ik(phi_fix,i) + log N(psi_ik; m_i, Psi) - log g_ik] - log K``,

needs the model only through ``l_ik``, the log-likelihood of draw ``k``, which
depends on ``theta`` only through the parameters without a random effect
(``phi_fix,i``, e.g. a residual SD). Those enter by a second-order Taylor
expansion per draw around their value at the centre (central differences, step
``0.01`` on their log scale), so one surrogate costs ``1 + 2 f + f (f - 1)``
likelihood passes for ``f`` such parameters and then gives the value and an
analytic gradient at numpy speed. At the centre it equals the importance
objective exactly (same draws); elsewhere it is an unbiased importance
estimate of the same likelihood with a proposal adapted to the centre.
:func:`minimize_fixed_proposal` re-centres it until the optimum stops moving.
"""

from __future__ import annotations

import copy
import itertools

import numba
import numpy as np

from .._numerics import LOG_2PI
from ._base import BaseObjective, population_means
from ._importance import _BATCH_DRAWS
from ._proposal_kernel import surrogate_moments
from ._surrogate_general import general_log_pop, general_value_and_gradient
from ._weighted import WeightedDraws

__all__ = ["FixedProposalSurrogate", "negligible_random_effects"]

_STEP = 0.01  # Taylor step of the parameters without a random effect
# random effects with an SD below this (log scale: 0.1 % between individuals) are held to
# be absent when the draws are fixed (see FixedProposalSurrogate's ``degenerate``)
NEGLIGIBLE_VAR = 1e-6
_SERIAL_SIZE = 1_000_000  # draw entries below which one thread is faster (see _objective)


def negligible_random_effects(objective, x):
    """Random effects (indices) whose variance at ``x`` is below ``NEGLIGIBLE_VAR``.

    Diagonal covariances only (a sub-block of a full Cholesky factor is not the
    factor of the sub-covariance); none when all of them would be.

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme.population import ImportanceObjective, PopulationObjective
    >>> model = LinearGaussian(n_params=2, sigma=0.3)
    >>> X, _ = model.simulate(3, random_state=0)
    >>> draws = ExactGaussianPosterior(model).fit().sample(X, 5, random_state=0)
    >>> base = PopulationObjective(draws, np.zeros((3, 5)), ["a", "b"])
    >>> obj = ImportanceObjective(base, model, X, 5, random_state=0)
    >>> negligible_random_effects(obj, obj.pack(cov=np.diag([1.0, 1e-9]))).tolist()
    [1]
    """
    layout = objective.layout
    none = np.array([], dtype=np.intp)
    if getattr(layout, "general", False) or not all(len(b) == 1 for b in layout.blocks):
        return none
    _, _, L = layout.factors(np.asarray(x, dtype=float))
    var = np.einsum("ij,ij->i", L, L)
    re = np.asarray(objective.re, dtype=np.intp)
    small = re[var[re] < NEGLIGIBLE_VAR]
    return small if small.size < re.size else none


def taylor_shifts(f, steps):
    """Shifts of the ``f`` fixed parameters for a second-order expansion, shape (s, f).

    Row 0 is no shift, rows ``1 + 2 j`` and ``2 + 2 j`` are ``+-steps[j]`` along
    ``j``, then two rows ``+-(steps[j] e_j + steps[l] e_l)`` per pair ``j < l``
    (the mixed derivatives by a second-order difference, see
    :func:`taylor_coefficients`).

    Examples
    --------
    >>> taylor_shifts(2, [0.1, 0.2]).tolist()[5:]
    [[0.1, 0.2], [-0.1, -0.2]]
    """
    steps = np.asarray(steps, dtype=float)
    rows = [np.zeros(f)]
    for j in range(f):
        for sign in (1.0, -1.0):
            e = np.zeros(f)
            e[j] = sign * steps[j]
            rows.append(e)
    for j, m in itertools.combinations(range(f), 2):
        e = np.zeros(f)
        e[j], e[m] = steps[j], steps[m]
        rows.extend([e, -e])
    return np.array(rows)


def taylor_coefficients(loglik, steps):
    """Gradient (n, K, f) and Hessian (n, K, f, f) of each draw's log-likelihood.

    From ``loglik`` (s, n, K) at the shifts of :func:`taylor_shifts`;
    non-finite differences (a zero likelihood on one side) are set to 0.

    Examples
    --------
    >>> import numpy as np
    >>> x = taylor_shifts(1, [0.1])[:, 0]
    >>> ll = (-(x**2) + 3 * x)[:, None, None]  # -x^2 + 3x at the shifts
    >>> a, H = taylor_coefficients(ll, [0.1])
    >>> np.round([a[0, 0, 0], H[0, 0, 0, 0]], 8).tolist()
    [3.0, -2.0]
    """
    steps = np.asarray(steps, dtype=float)
    f = steps.size
    l0 = loglik[0]
    n, K = l0.shape
    grad = np.zeros((n, K, f))
    hess = np.zeros((n, K, f, f))
    with np.errstate(invalid="ignore"):
        for j in range(f):
            plus, minus = loglik[1 + 2 * j], loglik[2 + 2 * j]
            grad[..., j] = (plus - minus) / (2 * steps[j])
            hess[..., j, j] = (plus - 2 * l0 + minus) / steps[j] ** 2
        for t, (j, m) in enumerate(itertools.combinations(range(f), 2)):
            # (f(++) - f(+0) - f(0+) + 2 f0 - f(-0) - f(0-) + f(--)) / (2 hj hm): error
            # O(h^2); the one-sided (f(++) - f(+0) - f(0+) + f0) / (hj hm) has an O(h)
            # error that put -237 into the log ke x log sigma entry of the observed
            # information (exact: 1.6; a coverage replicate of 24 subjects), so SEs of
            # 1.10x the exact ones (bench/wald_check.py, issue 14)
            pp, mm = loglik[1 + 2 * f + 2 * t], loglik[2 + 2 * f + 2 * t]
            single = loglik[1 + 2 * j] + loglik[2 + 2 * j] + loglik[1 + 2 * m] + loglik[2 + 2 * m]
            h = (pp + mm - single + 2 * l0) / (2 * steps[j] * steps[m])
            hess[..., j, m] = hess[..., m, j] = h
    grad[~np.isfinite(grad)] = 0.0
    hess[~np.isfinite(hess)] = 0.0
    return grad, hess


def _gauss(psi, m, L):
    """``log N(psi; m, L L^T)`` (n, K) and ``z = L^-1 (psi - m)`` (n, K, r)."""
    linv = np.linalg.inv(L)
    z = (psi - m[:, None, :]) @ linv.T
    log_norm = np.sum(np.log(np.diag(L))) + 0.5 * L.shape[0] * LOG_2PI
    return -0.5 * np.sum(z**2, axis=2) - log_norm, z, linv


class FixedProposalSurrogate(WeightedDraws, BaseObjective):
    """An :class:`ImportanceObjective` with its proposals fixed at ``x_center``.

    See the module docstring. Same layout, bounds and covariates as
    ``objective``; value, analytic gradient, weights, per-individual
    log-likelihoods and conditional means at any ``x``.

    Parameters
    ----------
    objective : ImportanceObjective
        The importance objective (with at least one random effect).
    x_center : array-like of shape (n_x,)
        Where the proposals are built.
    degenerate : array-like of int, default=()
        Parameters (indices) among the random effects whose variance is
        negligible at ``x_center``: their draws sit at the mean, so with the
        draws held fixed the mean could not move (theophylline's ``log ke``,
        variance ``e^-20``: a bootstrap on the fixed draws left it within
        0.001 where refits on the exact objective moved it by 0.1). They are
        expanded like the parameters without a random effect (Taylor in the
        mean; their density held at its value at the centre), and their
        variance drops out of the surrogate.

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme.population import ImportanceObjective, PopulationObjective
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(5, random_state=0)
    >>> draws = ExactGaussianPosterior(model).fit().sample(X, 50, random_state=0)
    >>> base = PopulationObjective(draws, np.zeros((5, 50)), ["theta0"])
    >>> obj = ImportanceObjective(base, model, X, 200, random_state=0)
    >>> x = obj.pack(beta=[0.0], cov=[[1.0]])
    >>> sur = FixedProposalSurrogate(obj, x)
    >>> bool(np.isclose(sur(x), obj(x)))
    True
    >>> x2 = obj.pack(beta=[0.3], cov=[[0.8]])
    >>> exact = -model.marginal_loglik(X, np.array([0.3]), np.array([[0.8]])).sum()
    >>> bool(abs(sur(x2) - exact) < 0.1)
    True
    """

    exact_likelihood = True

    def __init__(self, objective, x_center, degenerate=()):
        degenerate = np.intersect1d(objective.re, np.asarray(degenerate, dtype=np.intp))
        if degenerate.size:  # expanded as fixed parameters: their draws shift with the mean
            objective = copy.copy(objective)
            objective.fe = np.union1d(objective.fe, degenerate)
            re = np.setdiff1d(objective.re, degenerate)
        else:
            re = objective.re
        if not re.size:
            raise ValueError("the surrogate needs at least one random effect")
        x_center = np.asarray(x_center, dtype=float).reshape(-1)
        self.layout, self.covariates, self.n = objective.layout, objective.covariates, objective.n
        self.re, self.fe, self.K, self.d = re, objective.fe, objective.K, objective.d
        self.x_center = x_center.copy()
        self.group_codes = objective.group_codes
        beta, B, L = self.layout.factors(x_center)
        self._means_c = population_means(beta, B, self.covariates)
        # absolute steps on the log scale, the same in any units (see _fixed_point._radii)
        self.steps = np.full(self.fe.size, _STEP)
        shifts = taylor_shifts(self.fe.size, self.steps)
        phi, log_ratio, loglik = shifted_logliks(objective, x_center, shifts)
        self._psi = np.ascontiguousarray(phi[..., self.re])
        if self.layout.general:  # grouped variances or t random effects
            log_pop_c = general_log_pop(self, x_center)[1]
        else:
            log_pop_c = _gauss(self._psi, self._means_c[:, self.re], L[np.ix_(self.re, self.re)])[0]
        # base_ik = l_ik(centre) - log g_ik, as log_ratio = log N_c - log g
        self._base = loglik[0] + log_ratio - log_pop_c
        self._a, self._H = taylor_coefficients(loglik, self.steps)
        self._cache = (None, None)

    # ------------------------------------------------------------ evaluation
    def _terms(self, x):
        """Log weights (n, K) at ``x`` and what the gradient needs."""
        if self.layout.general:
            means, log_pop = general_log_pop(self, x)
            z = linv = None
        else:
            beta, B, L = self.layout.factors(np.asarray(x, dtype=float))
            means = population_means(beta, B, self.covariates)
            log_pop, z, linv = _gauss(self._psi, means[:, self.re], L[np.ix_(self.re, self.re)])
        delta = means[:, self.fe] - self._means_c[:, self.fe]  # (n, f)
        Hd = np.einsum("nkfg,ng->nkf", self._H, delta)
        taylor = np.einsum("nkf,nf->nk", self._a + 0.5 * Hd, delta)
        with np.errstate(invalid="ignore"):
            log_w = self._base + taylor + log_pop
        return log_w, z, linv, Hd, means

    def draws(self, x):
        """Draws ``phi`` (n, K, d) at ``x`` (random effects at the fixed draws) and log weights.

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
        >>> [a.shape for a in FixedProposalSurrogate(obj, x).draws(x)]
        [(4, 50, 1), (4, 50)]
        """
        log_w, _, _, _, means = self._terms(x)
        phi = np.empty((self.n, self.K, self.d))
        phi[..., self.re] = self._psi
        phi[..., self.fe] = means[:, None, self.fe]
        return phi, log_w

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
        >>> bool(np.isfinite(FixedProposalSurrogate(obj, x)(x)))
        True
        """
        return self.value_and_gradient(x)[0]

    def gradient(self, x):
        """Analytic gradient at free ``x``, shape ``(n_x,)``.

        Examples
        --------
        >>> import numpy as np
        >>> from scipy.optimize import approx_fprime
        >>> from sknlme.models import LinearGaussian
        >>> from sknlme.posterior import ExactGaussianPosterior
        >>> from sknlme.population import ImportanceObjective, PopulationObjective
        >>> model = LinearGaussian(n_params=1, sigma=0.3)
        >>> X, _ = model.simulate(4, random_state=0)
        >>> draws = ExactGaussianPosterior(model).fit().sample(X, 20, random_state=0)
        >>> base = PopulationObjective(draws, np.zeros((4, 20)), ["theta0"])
        >>> obj = ImportanceObjective(base, model, X, 50, random_state=0)
        >>> sur = FixedProposalSurrogate(obj, obj.pack(beta=[0.0], cov=[[1.0]]))
        >>> x = obj.pack(beta=[0.2], cov=[[0.7]])
        >>> bool(np.allclose(sur.gradient(x), approx_fprime(x, sur, 1e-7), atol=1e-4))
        True
        """
        return self.value_and_gradient(x)[1]

    def value_and_gradient(self, x):
        """Objective value and analytic gradient over the free parameters.

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
        >>> f, g = FixedProposalSurrogate(obj, x).value_and_gradient(x)
        >>> bool(np.isclose(f, obj(x))), g.shape
        (True, (2,))
        """
        x = np.asarray(x, dtype=float).reshape(-1)
        key = x.tobytes()
        cached_key, cached = self._cache
        if cached_key == key:
            return cached[0], cached[1].copy()
        if not np.all(np.isfinite(x)):
            return np.nan, np.full(self.n_x, np.nan)
        if self.layout.general:
            value, g = general_value_and_gradient(self, x)
            self._cache = (key, (value, g))
            return value, g.copy()
        beta, B, L = self.layout.factors(x)
        means = population_means(beta, B, self.covariates)
        L_re = L[np.ix_(self.re, self.re)]
        linv = np.linalg.inv(L_re)
        delta = np.ascontiguousarray(means[:, self.fe] - self._means_c[:, self.fe])
        n, r, f = self.n, self.re.size, self.fe.size
        lse, zbar, dfix, S = np.empty(n), np.empty((n, r)), np.empty((n, f)), np.empty((n, r, r))
        threads = numba.get_num_threads()
        if self._psi.size < _SERIAL_SIZE:  # waking the thread pool costs more than it saves
            numba.set_num_threads(1)  # thread-local setting, restored below
        try:
            surrogate_moments(
                self._psi,
                self._base,
                self._a,
                self._H,
                np.ascontiguousarray(means[:, self.re]),
                linv,
                delta,
                lse,
                zbar,
                dfix,
                S,
            )
        finally:
            numba.set_num_threads(threads)
        lse -= np.sum(np.log(np.diag(L_re))) + 0.5 * r * LOG_2PI
        value = float(-np.sum(lse) + n * np.log(self.K))
        if not np.isfinite(value):
            return value, np.full(self.n_x, np.nan)
        S = S.sum(axis=0)
        S = np.tril(S) + np.tril(S, -1).T
        dm = np.empty((n, self.d))  # d log L_i / d m_i
        dm[:, self.re] = zbar @ linv
        dm[:, self.fe] = dfix
        g_beta = -dm.sum(axis=0)
        g_B = -(self.covariates.T @ dm)
        g_L = np.zeros((self.d, self.d))
        g_L[np.ix_(self.re, self.re)] = -np.tril(linv.T @ (S - self.n * np.eye(r)))
        g = self.layout.chain(x, g_beta, g_B, g_L)
        self._cache = (key, (value, g))
        return value, g.copy()


def shifted_logliks(objective, x, shifts):
    """Proposal draws of ``objective`` at ``x`` and their likelihoods, fixed parameters shifted.

    Parameters
    ----------
    objective : ImportanceObjective
    x : array-like of shape (n_x,)
    shifts : array-like of shape (s, n_fixed)
        Offsets added to the parameters without a random effect (in the
        order of ``objective.fe``).

    Returns
    -------
    phi : ndarray of shape (n, K, d)
        The draws at ``x`` (unshifted).
    log_ratio : ndarray of shape (n, K)
        ``log N(psi; m, Psi) - log g(psi)``.
    loglik : ndarray of shape (s, n, K)
        ``log p(y_i | psi_ik, phi_fix + shift)``.

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
    >>> phi, ratio, ll = shifted_logliks(obj, x, np.zeros((1, 0)))
    >>> bool(np.allclose(ll[0] + ratio, obj.draws(x)[1]))
    True
    """
    x = np.asarray(x, dtype=float).reshape(1, -1)
    shifts = np.atleast_2d(np.asarray(shifts, dtype=float))
    n, s, K = objective.n, len(shifts), objective.K
    blocks = objective.shards.blocks(n, max(1, _BATCH_DRAWS // (K * s)))
    parts = objective.shards.map(_block_shifted, objective, blocks, x, shifts)
    phi, log_ratio, loglik = (
        np.concatenate(a, axis=ax)
        for a, ax in zip(zip(*parts, strict=True), (0, 0, 1), strict=True)
    )
    return phi, log_ratio, loglik


def _block_shifted(objective, rows, x, shifts):
    """:func:`shifted_logliks` for individuals ``rows``."""
    fe, s, K, d = objective.fe, len(shifts), objective.K, objective.d
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        p, lr = objective._proposal(x, rows)
        flat = np.repeat(p, s, axis=1)  # (n_r, s, K, d)
        flat[..., fe] += shifts[None, :, None, :]
        ratio = np.broadcast_to(lr[0][:, None, :], (rows.size, s, K))
        ll = objective._loglik(
            flat.reshape(rows.size, s * K, d), rows, ratio.reshape(rows.size, s * K)
        )
    return p[:, 0], lr[0], ll.reshape(rows.size, s, K).transpose(1, 0, 2)
