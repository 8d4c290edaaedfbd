"""The fixed-proposal surrogate under grouped variances or Student t random effects.

Same estimate as :class:`FixedProposalSurrogate` with the Gaussian density of
the fixed draws ``psi_ik`` replaced by :func:`~sknlme.population._density.log_density`
(each individual's own scales, the t's ``nu``) and its gradient, so normal,
grouped and t layouts share one surrogate. The pass is numpy over (n, K, r)
arrays, not the surrogate's numba kernel: at N = 300, K = 200, r = 1 one
evaluation took about 3 ms here, well below the likelihood passes that build
the surrogate.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

from ._base import population_means
from ._density import log_density

__all__ = ["general_log_pop", "general_value_and_gradient"]


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
    means, (log_pop, g_m, g_logsd, g_nu) = general_log_pop(sur, x, gradient=True)
    fe, re = sur.fe, sur.re
    delta = means[:, fe] - sur._means_c[:, fe]
    Hd = np.einsum("nkfg,ng->nkf", sur._H, delta)
    with np.errstate(invalid="ignore"):
        log_w = sur._base + np.einsum("nkf,nf->nk", sur._a + 0.5 * Hd, delta) + log_pop
    lse = logsumexp(log_w, axis=1)
    value = float(-np.sum(lse) + sur.n * np.log(sur.K))
    if not np.isfinite(value):
        return value, np.full(sur.n_x, np.nan)
    w = np.exp(log_w - lse[:, None])
    dm = np.empty((sur.n, sur.d))  # d log L_i / d m_i
    dm[:, re] = np.einsum("nk,nkr->nr", w, g_m)
    dm[:, fe] = np.einsum("nk,nkf->nf", w, sur._a + Hd)
    g_ls = np.zeros((sur.n, sur.d))
    g_ls[:, re] = -np.einsum("nk,nkr->nr", w, g_logsd)
    g_nu = -float(np.sum(w * g_nu))
    g = sur.layout.chain_general(
        x, -dm.sum(axis=0), -(sur.covariates.T @ dm), g_ls, sur.group_codes, g_nu
    )
    return value, g
