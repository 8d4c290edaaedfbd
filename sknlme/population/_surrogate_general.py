"""The fixed-proposal surrogate under grouped variances or Student t random effects.

Same estimate as :class:`FixedProposalSurrogate` with the Gaussian density of
the fixed draws ``psi_ik`` replaced by :func:`~sknlme.population._density.log_density`
(each individual's own scales, the t's ``nu``) and its gradient, so normal,
grouped and t layouts share one surrogate; the value and gradient come from
the numba pass :func:`~sknlme.population._density.surrogate_moments_general`.
"""

from __future__ import annotations

import numba
import numpy as np

from ._base import population_means
from ._density import log_density, log_norm_const, surrogate_moments_general

__all__ = ["general_log_pop", "general_value_and_gradient"]

_SERIAL_SIZE = 1_000_000  # draw entries below which one thread is faster (see _objective)


def general_log_pop(sur, x, gradient=False):
    """Population means (n, d) and ``log p(psi_ik; m_i, Psi_i, nu)`` (with gradients)."""
    layout, re = sur.layout, sur.re
    beta, B, _ = layout.factors(np.asarray(x, dtype=float))
    means = population_means(beta, B, sur.covariates)
    sd = layout.sd_rows(x, sur.group_codes)[:, re]
    ones = np.ones(re.size, dtype=np.int8)
    resid = sur._psi - means[:, None, re]
    return means, log_density(resid, sd, layout.df_value(x), ones, gradient)


def general_value_and_gradient(sur, x):
    """Negative log-likelihood and its analytic gradient (general layout)."""
    layout, fe, re = sur.layout, sur.fe, sur.re
    beta, B, _ = layout.factors(np.asarray(x, dtype=float))
    means = population_means(beta, B, sur.covariates)
    sd = layout.sd_rows(x, sur.group_codes)[:, re]
    nu = layout.df_value(x)
    ones = np.ones(re.size, dtype=np.int8)
    delta = np.ascontiguousarray(means[:, fe] - sur._means_c[:, fe])
    threads = numba.get_num_threads()
    if sur._psi.size < _SERIAL_SIZE:  # waking the thread pool costs more than it saves
        numba.set_num_threads(1)  # thread-local setting, restored below
    try:
        lse, zbar, zz, dfix, hnu = surrogate_moments_general(
            sur._psi,
            sur._base,
            sur._a,
            sur._H,
            np.ascontiguousarray(means[:, re]),
            np.ascontiguousarray(1.0 / sd),
            float(nu) if np.isfinite(nu) else 0.0,
            delta,
        )
    finally:
        numba.set_num_threads(threads)
    c, dc = log_norm_const(sd, nu, ones)
    lse = lse + c
    value = float(-np.sum(lse) + sur.n * np.log(sur.K))
    if not np.isfinite(value):
        return value, np.full(sur.n_x, np.nan)
    dm = np.empty((sur.n, sur.d))  # d log L_i / d m_i
    dm[:, re] = zbar / sd
    dm[:, fe] = dfix
    g_ls = np.zeros((sur.n, sur.d))
    g_ls[:, re] = -(zz - 1.0)
    g_nu = -float(np.sum(hnu + dc))
    g = layout.chain_general(
        x, -dm.sum(axis=0), -(sur.covariates.T @ dm), g_ls, sur.group_codes, g_nu
    )
    return value, g
