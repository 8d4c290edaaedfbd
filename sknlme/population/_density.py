"""Population densities beyond one shared normal: grouped scales and Student t.

One function per density serves every objective: :func:`log_density` gives
``log p(phi_ik; m_i, Psi_i, nu)`` with its gradient with respect to the mean,
the log standard deviations and ``nu`` (importance proposals, weights), and
:func:`moments_general` and :func:`surrogate_moments_general` are the numba
passes of the amortized objective and of the fixed-proposal surrogate over
the same density.

For individual ``i`` with standard deviations ``sd_ij`` (diagonal ``Psi_i``,
``z_ij = (phi_ij - m_ij) / sd_ij``), the ``r`` dimensions of ``t_mask`` are
jointly multivariate t with ``nu`` degrees of freedom and the others
independent normals:

``log p = c_i - sum_{j not t} z_j^2 / 2 - (nu + r) / 2 log(1 + q / nu)``,
``q = sum_{j in t} z_j^2``, with
``c_i = -sum_j log sd_ij - (d - r) log(2 pi) / 2 + log G((nu + r) / 2)
- log G(nu / 2) - r log(nu pi) / 2`` (the t's normalising constant, so that
log-likelihoods compare with a normal fit's). With ``u = (nu + r) / (nu + q)``
on the t dimensions and ``u = 1`` on the others,
``d log p / d m_j = u z_j / sd_j``, ``d log p / d log sd_j = u z_j^2 - 1`` and
``d log p / d nu = dc/dnu - log(1 + q / nu) / 2 + (nu + r) q / (2 nu (nu + q))``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange
from scipy.special import digamma, gammaln

from .._numerics import LOG_2PI
from ._kernels import _FASTMATH, _weights
from ._proposal_kernel import taylor_log_lik

__all__ = ["log_density", "log_norm_const", "moments_general", "surrogate_moments_general"]


def log_norm_const(sd, nu, t_mask):
    """Normalising constants ``c_i`` (n,) and ``dc / dnu`` (a float); see the module docstring.

    Examples
    --------
    >>> import numpy as np
    >>> c, _ = log_norm_const(np.ones((1, 1)), np.inf, np.zeros(1, dtype=np.int8))
    >>> bool(np.isclose(c[0], -0.5 * np.log(2 * np.pi)))
    True
    """
    sd = np.asarray(sd, dtype=float)
    d = sd.shape[1]
    r = int(np.sum(t_mask)) if np.isfinite(nu) else 0
    c = -np.log(sd).sum(axis=1) - 0.5 * (d - r) * LOG_2PI
    if r == 0:
        return c, 0.0
    c += gammaln((nu + r) / 2) - gammaln(nu / 2) - 0.5 * r * np.log(nu * np.pi)
    return c, float(0.5 * digamma((nu + r) / 2) - 0.5 * digamma(nu / 2) - 0.5 * r / nu)


def log_density(resid, sd, nu, t_mask, gradient=False):
    """Log population density of the residuals ``phi - m`` and, optionally, its gradient.

    Parameters
    ----------
    resid : ndarray of shape (n, K, d)
    sd : ndarray of shape (n, d)
        Each individual's standard deviations (scales of the t dimensions).
    nu : float
        Degrees of freedom; ``inf`` for a normal density.
    t_mask : ndarray of shape (d,)
        Dimensions that are jointly t (ignored when ``nu`` is ``inf``).
    gradient : bool, default=False
        Also return ``d log p / d m`` (n, K, d), ``d log p / d log sd`` (n, K, d)
        and ``d log p / d nu`` (n, K).

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.stats import t
    >>> lp = log_density(np.array([[[1.5]]]), np.array([[2.0]]), 3.0, np.ones(1, dtype=np.int8))
    >>> bool(np.isclose(lp[0, 0], t(3.0, scale=2.0).logpdf(1.5)))
    True
    """
    resid = np.asarray(resid, dtype=float)
    sd = np.asarray(sd, dtype=float)
    z = resid / sd[:, None, :]
    c, dc = log_norm_const(sd, nu, t_mask)
    tdims = np.asarray(t_mask, dtype=bool) & np.isfinite(nu)
    r = int(tdims.sum())
    logp = c[:, None] - 0.5 * np.sum(z[..., ~tdims] ** 2, axis=-1)
    fac = np.ones_like(z)
    g_nu = np.zeros(logp.shape)
    if r:
        q = np.sum(z[..., tdims] ** 2, axis=-1)
        logp -= 0.5 * (nu + r) * np.log1p(q / nu)
        fac[..., tdims] = ((nu + r) / (nu + q))[..., None]
        g_nu = dc - 0.5 * np.log1p(q / nu) + 0.5 * (nu + r) * q / (nu * (nu + q))
    if not gradient:
        return logp
    uz = fac * z
    return logp, uz / sd[:, None, :], uz * z - 1.0, g_nu


@njit(parallel=True, nogil=True, cache=True, fastmath=_FASTMATH)
def moments_general(samples, offsets, means, inv_sd, t_mask, nu, n_chunks):
    """Weighted moments of the amortized objective under :func:`log_density`.

    ``samples`` (n, d, K) as in ``_kernels``; ``inv_sd`` (n, d) per individual;
    ``nu <= 0`` means normal. Returns ``lse (n,)`` (without ``c_i``),
    ``zbar (n, d) = sum_k w u z``, ``zz (n, d) = sum_k w u z^2`` and
    ``hnu (n,) = sum_k w (d log p / d nu - dc / dnu)``.
    """
    n, d, K = samples.shape
    r = 0
    for j in range(d):
        r += t_mask[j]
    student = nu > 0.0 and r > 0
    lse = np.empty(n)
    zbar = np.zeros((n, d))
    zz = np.zeros((n, d))
    hnu = np.zeros(n)
    for ch in prange(n_chunks):
        z = np.empty((d, K))
        a = np.empty(K)
        q = np.empty(K)
        u = np.empty(K)
        w = np.empty(K)
        for i in range(ch * n // n_chunks, (ch + 1) * n // n_chunks):
            for k in range(K):
                a[k] = np.float64(offsets[i, k])
                q[k] = 0.0
            for j in range(d):
                mj = means[i, j]
                sj = inv_sd[i, j]
                tj = student and t_mask[j] == 1
                for k in range(K):
                    zjk = (np.float64(samples[i, j, k]) - mj) * sj
                    z[j, k] = zjk
                    if tj:
                        q[k] += zjk * zjk
                    else:
                        a[k] -= 0.5 * zjk * zjk
            if student:
                for k in range(K):
                    a[k] -= 0.5 * (nu + r) * np.log1p(q[k] / nu)
                    u[k] = (nu + r) / (nu + q[k])
            amax, s = _weights(a, w)
            if s == 0.0:
                lse[i] = -np.inf
                continue
            lse[i] = amax + np.log(s)
            for j in range(d):
                tj = student and t_mask[j] == 1
                t1 = 0.0
                t2 = 0.0
                for k in range(K):
                    wz = w[k] * z[j, k] * (u[k] if tj else 1.0)
                    t1 += wz
                    t2 += wz * z[j, k]
                zbar[i, j] = t1 / s
                zz[i, j] = t2 / s
            if student:
                h = 0.0
                for k in range(K):
                    h += w[k] * (
                        -0.5 * np.log1p(q[k] / nu) + 0.5 * (nu + r) * q[k] / (nu * (nu + q[k]))
                    )
                hnu[i] = h / s
    return lse, zbar, zz, hnu


@njit(parallel=True, nogil=True, cache=True)
def surrogate_moments_general(psi, base, grad, hess, means, inv_sd, nu, delta):
    """Moments of the fixed-proposal surrogate's weights under :func:`log_density`.

    Log weights ``a_ik = base_ik + grad_ik . d_i + d_i . hess_ik d_i / 2 + log p_ik - c_i``
    (``d_i = delta_i``, ``p`` the t, ``nu > 0``, or normal, ``nu <= 0``, density of the
    random effects ``psi`` (n, K, r) with ``means`` and ``inv_sd`` (n, r)). Returns
    ``lse (n,)`` (without ``c_i``), ``zbar (n, r) = sum_k w u z``, ``zz (n, r) =
    sum_k w u z^2``, ``dfix (n, f) = sum_k w (grad + hess d)`` and ``hnu (n,)``
    (as in :func:`moments_general`).
    """
    n, K, r = psi.shape
    f = delta.shape[1]
    student = nu > 0.0
    lse = np.empty(n)
    zbar = np.zeros((n, r))
    zz = np.zeros((n, r))
    dfix = np.zeros((n, f))
    hnu = np.zeros(n)
    for i in prange(n):
        a = np.empty(K)
        q = np.empty(K)
        z = np.empty((K, r))
        hd = np.empty((K, f))
        amax = -np.inf
        for k in range(K):
            t = taylor_log_lik(base[i, k], grad[i, k], hess[i, k], delta[i], hd[k])
            s = 0.0
            for j in range(r):
                zj = (psi[i, k, j] - means[i, j]) * inv_sd[i, j]
                z[k, j] = zj
                s += zj * zj
            q[k] = s
            a[k] = t - (0.5 * (nu + r) * np.log1p(s / nu) if student else 0.5 * s)
            if a[k] > amax:
                amax = a[k]
        if amax == -np.inf:
            lse[i] = -np.inf
            continue
        total = 0.0
        for k in range(K):
            a[k] = np.exp(a[k] - amax)
            total += a[k]
        lse[i] = amax + np.log(total)
        for k in range(K):
            w = a[k] / total
            if w == 0.0:
                continue
            u = (nu + r) / (nu + q[k]) if student else 1.0
            for j in range(r):
                wz = w * u * z[k, j]
                zbar[i, j] += wz
                zz[i, j] += wz * z[k, j]
            for j in range(f):
                dfix[i, j] += w * (grad[i, k, j] + hd[k, j])
            if student:
                hnu[i] += w * (
                    -0.5 * np.log1p(q[k] / nu) + 0.5 * (nu + r) * q[k] / (nu * (nu + q[k]))
                )
    return lse, zbar, zz, dfix, hnu
