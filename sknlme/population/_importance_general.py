"""Importance proposals under grouped variances or Student t random effects.

The proposal of :class:`ImportanceObjective` is built per group level with
that level's ``Psi`` (the t proposal's centre and its defensive normal
component, see :func:`~sknlme.population._proposal.t_proposal`), and the
log ratio ``log N(psi; m, Psi) - log g`` it returns is turned into
``log p(psi; m, Psi, nu) - log g`` by adding ``log p - log N`` (zero for
normal random effects): the proposal ``g`` is unchanged, only the population
density it is weighed against is the t.
"""

from __future__ import annotations

import numpy as np

from ._base import population_means
from ._density import log_density
from ._proposal import t_proposal

__all__ = ["general_proposal"]


def general_proposal(obj, xs, rows):
    """``phi`` (n, b, K, d) and ``log p(psi; m, Psi_i, nu) - log g`` (b, n, K) (general layout)."""
    layout = obj.layout
    b, n, K, d, re = len(xs), rows.size, obj.K, obj.d, obj.re
    r = re.size
    covariates = None if obj.covariates is None else obj.covariates[rows]
    codes = obj.group_codes[rows]
    phi = np.empty((n, b, K, d))
    log_ratio = np.zeros((b, n, K))
    ones = np.ones(r, dtype=np.int8)
    for t, x in enumerate(xs):
        beta, B, _ = layout.factors(x)
        means = population_means(beta, B, covariates)
        phi[:, t, :, obj.fe] = means[:, None, obj.fe].transpose(2, 0, 1)
        if not r:
            continue
        var = layout.group_variances(x)[:, re]
        nu = layout.df_value(x)
        for g in np.unique(codes):
            sel = np.flatnonzero(codes == g)
            at = rows[sel]
            psi, lr = t_proposal(
                obj._std[at],
                obj._log_t0[at],
                obj._lam[at],
                obj._eta_given(at, means[None, sel])[0],
                means[None, sel][:, :, re],
                np.diag(var[g])[None],
                obj.inflation,
                obj._pop_std[at],
                obj.df,
            )
            phi[sel[:, None], t, :, re[None, :]] = np.moveaxis(psi[0], -1, 1)
            log_ratio[t, sel] = lr[0]
        if np.isfinite(nu):
            resid = phi[:, t][..., re] - means[:, None, re]
            sd = np.sqrt(var[codes])
            log_ratio[t] += log_density(resid, sd, nu, ones) - log_density(resid, sd, np.inf, ones)
    return phi, log_ratio
