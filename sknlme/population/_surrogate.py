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
analytic gradient at numpy speed. An additive residual SD on the log scale
(:func:`sknlme.models.additive_log_sd`) needs no passes of its own: its
coefficients follow from the values at the centre. At the centre it equals the importance
objective exactly (same draws); elsewhere it is an unbiased importance
estimate of the same likelihood with a proposal adapted to the centre.
:func:`minimize_fixed_proposal` re-centres it until the optimum stops moving.
"""

from __future__ import annotations

import copy

import numba
import numpy as np

from .._numerics import LOG_2PI
from ..models import additive_log_sd
from ._base import BaseObjective, population_means
from ._proposal_kernel import surrogate_moments
from ._surrogate_general import general_log_pop, general_value_and_gradient
from ._taylor import shifted_logliks, taylor_coefficients, taylor_shifts, with_log_sd
from ._weighted import WeightedDraws

__all__ = ["FixedProposalSurrogate"]

_STEP = 0.01  # Taylor step of the parameters without a random effect
_SERIAL_SIZE = 1_000_000  # draw entries below which one thread is faster (see _objective)


def _gauss(psi, m, L):
    """``log N(psi; m, L L^T)`` (n, K) and ``z = L^-1 (psi - m)`` (n, K, r)."""
    linv = np.linalg.inv(L)
    z = (psi - m[:, None, :]) @ linv.T
    log_norm = np.sum(np.log(np.diag(L))) + 0.5 * L.shape[0] * LOG_2PI
    return -0.5 * np.sum(z**2, axis=2) - log_norm, z, linv


def _log_sd_position(objective, fe):
    """``(p, m)``: the additive log SD's position in ``fe`` and the observed values, or None."""
    found = additive_log_sd(objective.model, objective._padded)
    if found is None or found[0] not in fe:
        return None
    return int(np.flatnonzero(fe == found[0])[0]), found[1]


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
        scale = _log_sd_position(objective, self.fe)
        shifted = np.delete(np.arange(self.fe.size), [] if scale is None else scale[0])
        sub = taylor_shifts(shifted.size, self.steps[shifted])
        shifts = np.zeros((len(sub), self.fe.size))  # the log SD (if any) is not shifted
        shifts[:, shifted] = sub
        phi, log_ratio, loglik = shifted_logliks(objective, x_center, shifts)
        self._psi = np.ascontiguousarray(phi[..., self.re])
        if self.layout.general:  # grouped variances or t random effects
            log_pop_c = general_log_pop(self, x_center)[1]
        else:
            log_pop_c = _gauss(self._psi, self._means_c[:, self.re], L[np.ix_(self.re, self.re)])[0]
        # base_ik = l_ik(centre) - log g_ik, as log_ratio = log N_c - log g
        self._base = loglik[0] + log_ratio - log_pop_c
        self._a, self._H = taylor_coefficients(loglik, self.steps[shifted])
        if scale is not None:  # the log SD's coefficients from the centre's values
            p, m = scale
            s0 = self._means_c[:, self.fe[p]]
            self._a, self._H = with_log_sd(loglik[0], self._a, self._H, p, m, s0)
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
