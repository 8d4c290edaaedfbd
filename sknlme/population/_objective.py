"""Monte-Carlo marginal likelihood of the population parameters, with its gradient."""

from __future__ import annotations

import copy

import numba
import numpy as np

from .._numerics import LOG_2PI
from . import _kernels
from ._base import BaseObjective, population_means
from ._objective_general import (
    general_log_terms,
    general_moments,
    general_value_and_gradient,
    group_codes,
)
from ._offsets import _as_samples, amortized_offsets
from ._parametrization import Parametrization

__all__ = ["PopulationObjective", "amortized_offsets"]

_CHUNK = 1 << 14  # individuals per chunk in validation passes
# Below this many draw entries (n K d) one pass takes well under a millisecond on one
# core and runs on the calling thread: measured on a loaded 2-core machine, waking
# numba's OpenMP pool cost up to 20 ms per pass at N = 1,000, K = 100, d = 6.
_SERIAL_SIZE = 1_000_000


def _transposed(samples):
    """Copy of (n, K, d) draws as contiguous (n, d, K) in the same dtype, in chunks."""
    n, K, d = samples.shape
    out = np.empty((n, d, K), dtype=samples.dtype)
    for start in range(0, n, _CHUNK):
        out[start : start + _CHUNK] = samples[start : start + _CHUNK].transpose(0, 2, 1)
    return out


def _check_finite(arr, what, allow_neg_inf=False):
    """Raise on the first non-finite entry, naming the individual (row) and draw."""
    for start in range(0, arr.shape[0], _CHUNK):
        block = arr[start : start + _CHUNK]
        bad = ~np.isfinite(block)
        if allow_neg_inf:
            bad &= ~np.isneginf(block)
        if bad.any():
            idx = np.argwhere(bad)[0]
            where = f"individual row {start + idx[0]}, draw {idx[-1]}"
            if block.ndim == 3:  # transposed draws (n, d, K)
                where += f", parameter {idx[1]}"
            raise ValueError(f"{what} has a non-finite value {block[tuple(idx)]} for {where}")


class PopulationObjective(BaseObjective):
    """Negative Monte-Carlo log marginal likelihood of the population parameters.

    ``f(x) = -sum_i logsumexp_k [log N(phi_ik; m_i, Psi) + c_ik] + n log K`` with
    ``m_i = beta + B^T c_i`` and ``Psi`` from the covariance parameters (see
    ``Parametrization`` for the layout and default
    bounds). The gradient is analytic: with softmax weights
    ``w_ik`` over ``k`` and ``z_ik = L^{-1}(phi_ik - m_i)`` (``Psi = L L^T``),
    ``df/dm_i = -L^{-T} sum_k w_ik z_ik`` and
    ``df/dL = -lower(L^{-T} (sum_ik w_ik z_ik z_ik^T - n I))``.

    Parameters
    ----------
    samples : array-like of shape (n, K, d)
        Draws ``phi_ik`` (float32 or float64; sums run in float64). They are
        copied once, in their own dtype, to an (n, d, K) layout so that the
        kernels read every parameter's draws contiguously; no float64 copy.
    log_offsets : array-like of shape (n, K)
        Per-draw terms ``c_ik``: ``-log p0(phi_ik)`` (amortized likelihood, see
        :func:`amortized_offsets`) or ``log p(y_i|phi_ik) - log q(phi_ik|y_i)``
        (importance sampling). ``-inf`` is allowed (zero weight).
    param_names : sequence of str
        Names of the ``d`` individual parameters.
    covariance : {"diag", "cholesky"} or list of lists of str, default="diag"
        Random-effects covariance structure.
    random_effects : sequence of str, default=None
        Parameters with a random effect (all when None); the others have the
        fixed variance ``variance_floor``.
    covariates : array-like of shape (n, p), default=None
        Preprocessed covariates (a DataFrame gives names and row labels).
    covariate_names : sequence of str, default=None
        Names of the covariate columns.
    covariate_effects : dict, default=None
        Covariate name -> parameter names it shifts (one free parameter each,
        named ``"{covariate}:{parameter}"``).
    fixed : dict, default=None
        Entries of the full parameter vector held fixed (name -> value).
    variance_floor : float, default=1e-3
        Variance of parameters without random effect.
    bounds : dict, default=None
        Name -> ``(low, high)`` overriding the data-driven defaults.
    variance_groups : tuple (column, labels, params), default=None
        Group-specific variances: ``labels`` (n,) is each individual's level of
        ``column``; the random effects ``params`` get one log-variance per level
        (``log_var(p)[column=level]``). Diagonal covariance only.
    group_levels : sequence, default=None
        The levels (sorted labels when None), e.g. those of an earlier fit.
    random_effects_distribution : {"normal", "student_t"}, default="normal"
        Multivariate t random effects (scale ``Psi``, its normalising constant
        included) with ``df`` degrees of freedom; diagonal covariance only.
    df : float, default=None
        Fixed degrees of freedom; when None ``log_df = log(df)`` is estimated.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> phi = rng.normal([1.0, -1.0], 0.5, size=(50, 20, 2)).astype(np.float32)
    >>> obj = PopulationObjective(phi, np.zeros((50, 20)), ["a", "b"])
    >>> obj.x_names
    ['a', 'b', 'log_var(a)', 'log_var(b)']
    >>> f, g = obj.value_and_gradient(obj.pack(beta=[1.0, -1.0], cov=np.eye(2)))
    >>> g.shape
    (4,)
    """

    def __init__(
        self,
        samples,
        log_offsets,
        param_names,
        *,
        covariance="diag",
        random_effects=None,
        covariates=None,
        covariate_names=None,
        covariate_effects=None,
        fixed=None,
        variance_floor=1e-3,
        bounds=None,
        variance_groups=None,
        group_levels=None,
        random_effects_distribution="normal",
        df=None,
    ):
        self._set_samples(samples, log_offsets, len(param_names))
        n = self.n
        cov_values, cov_names = self._check_covariates(covariates, covariate_names, n)
        self.covariates = cov_values
        self.group_codes = np.zeros(n, dtype=np.intp)
        groups = None
        if variance_groups is not None:
            column, labels, params = variance_groups
            self.group_codes, levels = group_codes(labels, group_levels, n)
            groups = (column, levels, params)
        lo, hi = self._sample_range()
        self.layout = Parametrization(
            param_names,
            covariance=covariance,
            random_effects=random_effects,
            covariate_names=cov_names,
            covariate_effects=covariate_effects,
            fixed=fixed,
            variance_floor=variance_floor,
            bounds=bounds,
            sample_range=(lo, hi),
            covariate_scale=cov_values.std(axis=0) if cov_values.shape[1] else None,
            variance_groups=groups,
            distribution=random_effects_distribution,
            df=df,
        )
        # entries of sum_k w z z^T the chain rule needs: inside the covariance blocks
        self._pattern = np.zeros((self.d, self.d), dtype=np.int8)
        for block in self.layout.blocks:
            self._pattern[np.ix_(block, block)] = 1
        self._cache = (None, None)

    # ------------------------------------------------------------ validation
    def _set_samples(self, samples, log_offsets, d):
        samples = _as_samples(samples)
        n, K, ds = samples.shape
        if ds != d:
            raise ValueError(f"samples have {ds} parameters but param_names has {d}")
        offsets = np.asarray(log_offsets)
        if offsets.dtype not in (np.float32, np.float64):
            offsets = offsets.astype(np.float64)
        if offsets.shape != (n, K):
            raise ValueError(f"log_offsets must have shape {(n, K)}, got {offsets.shape}")
        _check_finite(offsets, "log_offsets", allow_neg_inf=True)
        self._draws = _transposed(samples)
        self._draws.flags.writeable = False
        _check_finite(self._draws, "samples")
        self.log_offsets = np.ascontiguousarray(offsets)
        self.n, self.K, self.d = n, K, d

    @staticmethod
    def _check_covariates(covariates, covariate_names, n):
        if covariates is None:
            if covariate_names:
                raise ValueError("covariate_names given but no covariates")
            return np.zeros((n, 0)), []
        rows = None
        if hasattr(covariates, "columns"):  # a DataFrame
            covariate_names = (
                list(covariates.columns) if covariate_names is None else covariate_names
            )
            rows = list(covariates.index)
        values = np.asarray(covariates, dtype=float)
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2 or values.shape[0] != n:
            raise ValueError(f"covariates must have shape ({n}, p), got {values.shape}")
        if covariate_names is None:
            covariate_names = [f"x{c}" for c in range(values.shape[1])]
        names = [str(c) for c in covariate_names]
        if len(names) != values.shape[1] or len(set(names)) != len(names):
            raise ValueError(f"need {values.shape[1]} unique covariate_names, got {names}")
        bad = ~np.isfinite(values)
        if bad.any():
            i, c = np.argwhere(bad)[0]
            who = f"individual row {i}" + (f" (ID {rows[i]!r})" if rows is not None else "")
            raise ValueError(f"covariate {names[c]!r} has value {values[i, c]} for {who}")
        return values.copy(), names

    def _sample_range(self):
        lo = np.full(self.d, np.inf)
        hi = np.full(self.d, -np.inf)
        for start in range(0, self.n, _CHUNK):
            block = self._draws[start : start + _CHUNK]
            lo = np.minimum(lo, block.min(axis=(0, 2)))
            hi = np.maximum(hi, block.max(axis=(0, 2)))
        return lo, hi

    def with_samples(self, samples, log_offsets):
        """Same objective (layout, covariates, bounds) on new draws; ``K`` may differ.

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.population import PopulationObjective
        >>> phi = np.random.default_rng(0).normal(size=(5, 20, 1))
        >>> obj = PopulationObjective(phi, np.zeros((5, 20)), ["a"])
        >>> obj.with_samples(np.zeros((5, 40, 1)), np.zeros((5, 40))).K
        40
        """
        new = copy.copy(self)
        new._set_samples(samples, log_offsets, self.d)
        if new.n != self.n:
            raise ValueError(f"new samples have {new.n} individuals, expected {self.n}")
        new._cache = (None, None)
        return new

    @property
    def samples(self):
        """The draws as an (n, K, d) view of the internal (n, d, K) copy (same dtype).

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.population import PopulationObjective
        >>> PopulationObjective(np.zeros((5, 20, 1)), np.zeros((5, 20)), ["a"]).samples.shape
        (5, 20, 1)
        """
        return self._draws.transpose(0, 2, 1)

    # ------------------------------------------------------------ evaluation
    def _moments(self, x):
        if self.layout.general:
            return general_moments(self, x)
        beta, B, L = self.layout.factors(x)
        linv = np.linalg.inv(L)  # exact enough: L is triangular with a positive diagonal
        means = population_means(beta, B, self.covariates)
        n_chunks = min(self.n, 64)
        threads = numba.get_num_threads()
        if self._draws.size < _SERIAL_SIZE:  # waking the thread pool costs more than it saves
            numba.set_num_threads(1)  # thread-local setting, restored below
        try:
            if self.layout.diagonal:
                lse, zbar, S = _kernels.moments_diag(
                    self._draws, self.log_offsets, means, np.diag(linv).copy(), n_chunks
                )
            else:
                lse, zbar, S = _kernels.moments_full(
                    self._draws, self.log_offsets, means, linv, self._pattern, n_chunks
                )
        finally:
            numba.set_num_threads(threads)
        lse += -np.sum(np.log(np.diag(L))) - 0.5 * self.d * LOG_2PI
        return lse, zbar, S.sum(axis=0), B, linv

    def value_and_gradient(self, x):
        """Objective value and gradient over the free parameters.

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.population import PopulationObjective
        >>> phi = np.random.default_rng(0).normal(size=(5, 20, 1))
        >>> obj = PopulationObjective(phi, np.zeros((5, 20)), ["a"])
        >>> obj.value_and_gradient(obj.pack())[1].shape
        (2,)
        """
        x = np.asarray(x, dtype=float).reshape(-1)
        if x.shape != (self.n_x,):
            raise ValueError(f"x must have {self.n_x} entries, got {x.shape[0]}")
        key = x.tobytes()
        cached_key, cached = self._cache  # one read: safe when threads share the objective
        if cached_key == key:
            return cached[0], cached[1].copy()
        if not np.all(np.isfinite(x)):
            return np.nan, np.full(self.n_x, np.nan)
        if self.layout.general:
            f, g = general_value_and_gradient(self, x)
            self._cache = (key, (f, g))
            return f, g.copy()
        lse, zbar, S, B, linv = self._moments(x)
        f = -np.sum(lse) + self.n * np.log(self.K)
        # df/dm_i = -L^{-T} zbar_i, so df/dbeta = -L^{-T} sum_i zbar_i and
        # df/dB = sum_i c_i (df/dm_i)^T = -(C^T zbar) L^{-1}
        g_beta = -(linv.T @ zbar.sum(axis=0))
        g_B = -(_kernels.cross(self.covariates, zbar) @ linv)
        S = np.tril(S) + np.tril(S, -1).T
        g_L = -np.tril(linv.T @ (S - self.n * np.eye(self.d)))
        g = self.layout.chain(x, g_beta, g_B, g_L)
        self._cache = (key, (float(f), g))
        return float(f), g.copy()

    def _log_terms(self, x):
        if self.layout.general:
            return general_log_terms(self, x)
        beta, B, L = self.layout.factors(x)
        linv = np.linalg.inv(L)
        means = population_means(beta, B, self.covariates)
        a = _kernels.log_terms(self._draws, self.log_offsets, means, linv)
        return a - np.sum(np.log(np.diag(L))) - 0.5 * self.d * LOG_2PI

    def individual_loglik(self, x):
        """Per-individual estimate ``log L_i = logsumexp_k(...) - log K``, shape (n,).

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.population import PopulationObjective
        >>> phi = np.random.default_rng(0).normal(size=(5, 20, 1))
        >>> obj = PopulationObjective(phi, np.zeros((5, 20)), ["a"])
        >>> bool(np.isclose(obj.individual_loglik(obj.pack()).sum(), -obj(obj.pack())))
        True
        """
        lse = self._moments(np.asarray(x, dtype=float))[0]
        return lse - np.log(self.K)

    def weights(self, x):
        """Normalised importance weights (softmax over draws), shape (n, K).

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.population import PopulationObjective
        >>> phi = np.random.default_rng(0).normal(size=(5, 20, 1))
        >>> obj = PopulationObjective(phi, np.zeros((5, 20)), ["a"])
        >>> np.allclose(obj.weights(obj.pack()).sum(axis=1), 1.0)
        True
        """
        a = self._log_terms(np.asarray(x, dtype=float))
        amax = a.max(axis=1, keepdims=True)
        w = np.exp(a - np.where(np.isfinite(amax), amax, 0.0))
        s = w.sum(axis=1, keepdims=True)
        return np.divide(w, s, out=np.zeros_like(w), where=s > 0)

    def conditional_means(self, x):
        """``E[phi_i | y_i, theta]`` by the re-weighted draws, shape (n, d).

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.population import PopulationObjective
        >>> phi = np.random.default_rng(0).normal(size=(5, 20, 1))
        >>> obj = PopulationObjective(phi, np.zeros((5, 20)), ["a"])
        >>> obj.conditional_means(obj.pack()).shape
        (5, 1)
        """
        w = self.weights(np.asarray(x, dtype=float))
        return np.einsum("nk,nkd->nd", w, self.samples.astype(float, copy=False))
