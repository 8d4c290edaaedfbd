"""Per-draw Taylor expansions of the likelihood in the parameters without random effect.

The fixed-proposal surrogate (:mod:`._surrogate`) holds each individual's
proposal draws of the random effects fixed; the parameters without a random
effect (and random effects of negligible variance, see
:func:`negligible_random_effects`) enter each draw's log-likelihood by a
second-order expansion about the centre. This module has the shifts at which
the likelihood is evaluated, the expansion's coefficients from those values and
the batched likelihood passes at the shifted draws.
"""

from __future__ import annotations

import itertools

import numpy as np

from .._numerics import LOG_2PI
from ._importance import _BATCH_DRAWS

__all__ = [
    "negligible_random_effects",
    "shifted_logliks",
    "taylor_coefficients",
    "taylor_shifts",
    "with_log_sd",
]

# random effects with an SD below this (log scale: 0.1 % between individuals) are held to
# be absent when the draws are fixed (see FixedProposalSurrogate's ``degenerate``)
NEGLIGIBLE_VAR = 1e-6
# For the Hessian, also those whose variance is below this fraction of a typical
# individual's likelihood variance (1 / lam_jj, the median over individuals). Held at
# their draws, such a mean's curvature is 1 / Psi - Var_w(psi) / Psi^2 per individual,
# two terms near 1 / Psi whose difference, about lam_jj, carries the MC error of the
# weighted variance (sqrt(2 / ESS) relative): over the fit's 2**18 Hessian draws (ESS
# about 0.4 of them, any N) that error is about 0.0044 / rho of the curvature, rho =
# Psi lam_jj. Theophylline (shipped network, seeds 1 and 2): SD(log ke) 0.0022 and
# 0.0013, rho 0.0045 and 0.0015, above NEGLIGIBLE_VAR, so held: Hessian eigenvalues
# -4.8e3 and -3.4e4 and no SE for log ke (R nlme: 0.052); the other random effects had
# rho 29-40. At 0.02 the error is at most a fifth of the curvature.
WEAK_INFORMATION_RATIO = 0.02


def negligible_random_effects(objective, x, information_ratio=0.0):
    """Random effects (indices) whose variance at ``x`` is below ``NEGLIGIBLE_VAR``.

    Or below ``information_ratio`` times the median over individuals of their
    likelihood's conditional variance ``1 / lam_jj`` (see ``WEAK_INFORMATION_RATIO``).
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
    >>> x = obj.pack(cov=np.diag([1.0, 1e-4]))  # b: median lam_jj about 41, 1e-4 < 0.02 / 41
    >>> negligible_random_effects(obj, x).tolist(), negligible_random_effects(obj, x, 0.02).tolist()
    ([], [1])
    """
    layout = objective.layout
    none = np.array([], dtype=np.intp)
    if getattr(layout, "general", False) or not all(len(b) == 1 for b in layout.blocks):
        return none
    _, _, L = layout.factors(np.asarray(x, dtype=float))
    var = np.einsum("ij,ij->i", L, L)
    re = np.asarray(objective.re, dtype=np.intp)
    threshold = np.full(re.size, NEGLIGIBLE_VAR)
    if information_ratio > 0.0:
        info = np.median(np.einsum("nii->ni", objective._lam), axis=0)
        with np.errstate(divide="ignore"):
            threshold = np.maximum(threshold, information_ratio / info)
    small = re[var[re] < threshold]
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


def with_log_sd(l0, grad, hess, p, m, s0):
    """Taylor coefficients with an additive log SD put in at position ``p`` from ``l0``.

    Where a draw's log-likelihood is ``q exp(-2 (s - s0)) - m (s + log(2 pi) / 2)``
    with ``q = -R exp(-2 s0) / 2`` free of ``s`` (see
    :func:`sknlme.models.additive_log_sd`), its value ``l0`` at ``s0``
    gives ``q``, and then ``dl/ds = -2 q - m``, ``d2l/ds2 = 4 q`` and, along any
    other parameter ``t``, ``d2l/ds dt = -2 dl/dt``: no likelihood passes at
    shifted SDs (a surrogate of the one-compartment model took 3 passes, with a
    fixed ``log ke`` 7, where it now takes 1 and 3).

    Parameters
    ----------
    l0 : ndarray of shape (n, K)
        Log-likelihoods at the centre.
    grad, hess : ndarray of shape (n, K, f) and (n, K, f, f)
        Coefficients in the other fixed parameters (:func:`taylor_coefficients`).
    p : int
        Position of the log SD among the ``f + 1`` fixed parameters.
    m : ndarray of shape (n,)
        Observed values per individual.
    s0 : ndarray of shape (n,)
        The log SD at the centre.

    Examples
    --------
    >>> import numpy as np
    >>> r, m, s0 = 2.0, 3.0, np.log(0.5)
    >>> l0 = np.array([[-0.5 * r * np.exp(-2 * s0) - m * (s0 + 0.5 * np.log(2 * np.pi))]])
    >>> a, H = with_log_sd(l0, np.zeros((1, 1, 0)), np.zeros((1, 1, 0, 0)), 0, np.array([m]),
    ...                    np.array([s0]))
    >>> np.round([a[0, 0, 0], H[0, 0, 0, 0]], 10).tolist()  # r e^-2s0 - m, -2 r e^-2s0
    [5.0, -16.0]
    """
    n, K, f = grad.shape
    q = l0 + (m * (s0 + 0.5 * LOG_2PI))[:, None]
    others = np.delete(np.arange(f + 1), p)
    a = np.empty((n, K, f + 1))
    a[..., others] = grad
    a[..., p] = -2.0 * q - m[:, None]
    H = np.empty((n, K, f + 1, f + 1))
    H[..., others[:, None], others] = hess
    H[..., p, p] = 4.0 * q
    H[..., p, others] = H[..., others, p] = -2.0 * grad
    a[~np.isfinite(a)] = 0.0  # a zero likelihood: as taylor_coefficients
    H[~np.isfinite(H)] = 0.0
    return a, H


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
