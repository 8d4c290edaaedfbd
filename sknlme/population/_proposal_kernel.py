"""Numba kernel of the importance proposal: draws and log ratios in one pass.

:func:`sknlme.population._proposal.t_proposal` in numpy formed five
temporaries of the draws' size (``psi``, residuals, ``z``, ``u`` and their
squares) with batched 3 x 3 matrix products; it took 40 % of each importance
pass at N = 100 (9.6 of 25 s next to the likelihood's 15.6 s). Here each draw
is formed and scored in registers, individuals in parallel, and row ``i``
depends on individual ``i`` alone (bit for bit), as in numpy.
"""

import math

import numpy as np
from numba import njit, prange

__all__ = ["surrogate_moments", "t_mixture"]


@njit(parallel=True, nogil=True, cache=True)
def t_mixture(std, pop_std, log_t0, centre, A, chol_prec, m, L_pop, linv_pop, consts, psi, out):
    """Fill ``psi`` (b, n, K, r) and ``out`` (b, n, K) = ``log N(psi; m, Psi) - log g``.

    ``std`` (n, K_t, r) standardised t draws with log densities ``log_t0``;
    ``pop_std`` (n, K_p, r) standard normals; per ``b``: ``centre`` (n, r),
    ``A`` (n, r, r) the t scale factor, ``chol_prec`` (n, r, r) (``u =
    (psi - centre) chol_prec / inflation``), ``m`` (n, r), ``L_pop`` and
    ``linv_pop`` (r, r). ``consts`` (b, n, 5): log det A, the population
    log normaliser, the t log normaliser, ``df``, ``1 / inflation``; the
    mixture weight of the t part is ``K_t / K``.
    """
    b, n, K, r = psi.shape
    k_t = std.shape[1]
    log_a = math.log(k_t / K)
    log_1ma = math.log1p(-k_t / K) if k_t < K else -math.inf
    for t in range(b):
        for i in prange(n):
            log_det_a, log_norm = consts[t, i, 0], consts[t, i, 1]
            t_const, df, inv_infl = consts[t, i, 2], consts[t, i, 3], consts[t, i, 4]
            resid = np.empty(r)
            for k in range(K):
                # the draw
                for j in range(r):
                    s = centre[t, i, j] if k < k_t else m[t, i, j]
                    if k < k_t:
                        for q in range(r):
                            s += A[t, i, j, q] * std[i, k, q]
                    else:
                        for q in range(j + 1):
                            s += L_pop[t, j, q] * pop_std[i, k - k_t, q]
                    psi[t, i, k, j] = s
                    resid[j] = s - m[t, i, j]
                # population density
                zz = 0.0
                for j in range(r):
                    z = 0.0
                    for q in range(j + 1):
                        z += linv_pop[t, j, q] * resid[q]
                    zz += z * z
                log_pop = -0.5 * zz - log_norm
                if K == k_t:  # no defensive part: the t density of the standard draw
                    out[t, i, k] = log_pop - (log_t0[i, k] - log_det_a)
                    continue
                uu = 0.0
                for q in range(r):
                    u = 0.0
                    for j in range(q, r):
                        u += (psi[t, i, k, j] - centre[t, i, j]) * chol_prec[t, i, j, q]
                    u *= inv_infl
                    uu += u * u
                log_t = t_const - 0.5 * (df + r) * math.log1p(uu / df) - log_det_a
                x1, x2 = log_a + log_t, log_1ma + log_pop
                hi = max(x1, x2)
                log_g = hi + math.log1p(math.exp(min(x1, x2) - hi))
                out[t, i, k] = log_pop - log_g


@njit(inline="always")
def taylor_log_lik(base_ik, grad_ik, hess_ik, delta_i, hd_k):
    """``base + (g + H delta / 2) . delta`` of one draw; ``hd_k`` receives ``H delta``.

    The second-order expansion of a draw's log-likelihood in the parameters
    without random effect, shared by the surrogate kernels.
    """
    f = delta_i.shape[0]
    t = base_ik
    for j in range(f):
        h = 0.0
        for q in range(f):
            h += hess_ik[j, q] * delta_i[q]
        hd_k[j] = h
        t += (grad_ik[j] + 0.5 * h) * delta_i[j]
    return t


@njit(parallel=True, nogil=True, cache=True)
def surrogate_moments(psi, base, grad, hess, means, linv, delta, lse, zbar, dfix, S):
    """Moments of the fixed-proposal surrogate's weights, per individual.

    Log weights ``a_ik = base_ik + grad_ik . d_i + d_i . hess_ik d_i / 2 -
    |z_ik|^2 / 2`` with ``z_ik = linv (psi_ik - means_i)`` and ``d_i =
    delta_i``; fills ``lse`` (n,) = logsumexp_k a_ik, ``zbar`` (n, r) =
    sum_k w_ik z_ik, ``dfix`` (n, f) = sum_k w_ik (grad_ik + hess_ik d_i) and
    ``S`` (n, r, r) = sum_k w_ik z_ik z_ik^T (softmax weights ``w``).
    """
    n, K, r = psi.shape
    f = delta.shape[1]
    for i in prange(n):
        a = np.empty(K)
        z = np.empty((K, r))
        hd = np.empty((K, f))
        amax = -math.inf
        for k in range(K):
            t = taylor_log_lik(base[i, k], grad[i, k], hess[i, k], delta[i], hd[k])
            zz = 0.0
            for j in range(r):
                s = 0.0
                for q in range(j + 1):
                    s += linv[j, q] * (psi[i, k, q] - means[i, q])
                z[k, j] = s
                zz += s * s
            a[k] = t - 0.5 * zz
            if a[k] > amax:
                amax = a[k]
        for j in range(r):
            zbar[i, j] = 0.0
            for q in range(r):
                S[i, j, q] = 0.0
        for j in range(f):
            dfix[i, j] = 0.0
        if amax == -math.inf:
            lse[i] = -math.inf
            continue
        total = 0.0
        for k in range(K):
            a[k] = math.exp(a[k] - amax)
            total += a[k]
        lse[i] = amax + math.log(total)
        for k in range(K):
            w = a[k] / total
            if w == 0.0:
                continue
            for j in range(r):
                zbar[i, j] += w * z[k, j]
                for q in range(j + 1):
                    S[i, j, q] += w * z[k, j] * z[k, q]
            for j in range(f):
                dfix[i, j] += w * (grad[i, k, j] + hd[k, j])
