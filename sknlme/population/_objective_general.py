"""The amortized objective under grouped variances or Student t random effects.

:class:`PopulationObjective` hands its evaluation here when its layout is
``general`` (see ``_layout_general``); the pass over the draws is
:func:`~sknlme.population._density.moments_general` (numba), the chain rule
``Parametrization.chain_general``.
"""

from __future__ import annotations

import numba
import numpy as np

from ._base import population_means
from ._density import log_density, log_norm_const, moments_general

__all__ = ["general_log_terms", "general_moments", "general_value_and_gradient", "group_codes"]

_SERIAL_SIZE = 1_000_000  # as in _objective: below this one thread is faster


def group_codes(labels, levels=None, n=None):
    """Level index (n,) of every individual and the levels (sorted labels when None).

    Examples
    --------
    >>> codes, levels = group_codes(["B", "A", "B"])
    >>> codes.tolist(), levels
    ([1, 0, 1], ['A', 'B'])
    """
    labels = np.asarray(labels).astype(str).reshape(-1)
    if n is not None and labels.size != n:
        raise ValueError(f"variance group labels must have {n} entries, got {labels.size}")
    levels = sorted(set(labels.tolist())) if levels is None else [str(v) for v in levels]
    pos = {v: g for g, v in enumerate(levels)}
    bad = [i for i, v in enumerate(labels) if v not in pos]
    if bad:
        raise ValueError(
            f"individual row {bad[0]} has variance group {str(labels[bad[0]])!r}, "
            f"not one of {levels}"
        )
    return np.array([pos[v] for v in labels], dtype=np.intp), levels


def _density_args(obj, x):
    layout = obj.layout
    beta, B, _ = layout.factors(x)
    means = population_means(beta, B, obj.covariates)
    sd = layout.sd_rows(x, obj.group_codes)
    return means, sd, layout.df_value(x), layout.t_mask(), B


def general_moments(obj, x):
    """``lse`` (n,) with constants, ``zbar``, ``zz`` (n, d), ``hnu`` (n,), ``sd``, ``dc/dnu``."""
    means, sd, nu, mask, _ = _density_args(obj, x)
    threads = numba.get_num_threads()
    if obj._draws.size < _SERIAL_SIZE:
        numba.set_num_threads(1)  # thread-local, restored below
    try:
        lse, zbar, zz, hnu = moments_general(
            obj._draws,
            obj.log_offsets,
            means,
            np.ascontiguousarray(1.0 / sd),
            mask,
            float(nu) if np.isfinite(nu) else 0.0,
            min(obj.n, 64),
        )
    finally:
        numba.set_num_threads(threads)
    c, dc = log_norm_const(sd, nu, mask)
    return lse + c, zbar, zz, hnu, sd, dc


def general_value_and_gradient(obj, x):
    """Value and gradient of the negative amortized log-likelihood (general layout)."""
    lse, zbar, zz, hnu, sd, dc = general_moments(obj, x)
    f = -np.sum(lse) + obj.n * np.log(obj.K)
    alive = np.isfinite(lse)  # an individual with zero likelihood contributes no gradient
    g_m = np.where(alive[:, None], -zbar / sd, 0.0)
    g_logsd = np.where(alive[:, None], -(zz - 1.0), 0.0)
    g_nu = -float(np.sum(np.where(alive, hnu + dc, 0.0)))
    C = obj.covariates
    g = obj.layout.chain_general(x, g_m.sum(axis=0), C.T @ g_m, g_logsd, obj.group_codes, g_nu)
    return float(f), g


def general_log_terms(obj, x):
    """``a_ik = c_ik + log p(phi_ik; m_i, Psi_i, nu)`` (n, K) (general layout)."""
    means, sd, nu, mask, _ = _density_args(obj, x)
    resid = obj.samples.astype(float) - means[:, None, :]
    return obj.log_offsets.astype(float) + log_density(resid, sd, nu, mask)
