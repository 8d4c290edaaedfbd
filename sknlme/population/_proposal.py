"""Proposal ingredients of the importance likelihood.

Gaussian approximations of the individual likelihoods from posterior draws,
and the standardised Student t draws, keyed by individual.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln, ndtr
from scipy.stats import chi2

from .._numerics import LOG_2PI
from ..simulate import keyed_standard_normal, keyed_standard_t
from ._proposal_kernel import t_mixture

__all__ = [
    "conditioned_shift",
    "gaussian_likelihoods",
    "keyed_t_draws",
    "likelihood_gaussians",
    "posterior_likelihoods",
    "t_proposal",
]

_KEYED_ROWS = 4096  # individuals per block of keyed proposal normals


def likelihood_gaussians(draws, prior_mean, prior_cov, min_precision=1e-8):
    """Gaussian approximations of individual likelihoods from posterior draws.

    Parameters
    ----------
    draws : array-like of shape (n, K, r)
        Posterior draws under the prior ``N(prior_mean, prior_cov)``.
    prior_mean : array-like of shape (r,)
    prior_cov : array-like of shape (r,) or (r, r), or None
        Variances or covariance of the prior; None for a flat prior (a uniform
        prior inside its box: prior precision 0, the likelihood is the posterior).
    min_precision : float, default=1e-8
        Floor of the eigenvalues of the likelihood precision (a posterior wider
        than the prior in some direction carries no information there).

    Returns
    -------
    precision : ndarray of shape (n, r, r)
        ``S_q^-1 - S_0^-1`` with eigenvalues floored at ``min_precision``.
    shift : ndarray of shape (n, r)
        ``S_q^-1 mu_q - S_0^-1 mu_0``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> # likelihood N(1, 0.5^2) and prior N(0, 1): posterior N(0.8, 0.2)
    >>> draws = rng.normal(0.8, np.sqrt(0.2), size=(1, 200_000, 1))
    >>> lam, eta = likelihood_gaussians(draws, [0.0], [[1.0]])
    >>> np.round([lam[0, 0, 0], eta[0, 0] / lam[0, 0, 0]], 1)
    array([4., 1.])
    """
    draws = np.asarray(draws, dtype=float)
    n, K, r = draws.shape
    if K < r + 2:
        raise ValueError(f"need at least {r + 2} draws per individual for {r} random effects")
    mean = draws.mean(axis=1)
    centred = draws - mean[:, None, :]
    cov = np.einsum("nkr,nks->nrs", centred, centred) / (K - 1)
    return gaussian_likelihoods(mean, cov, prior_mean, prior_cov, min_precision)


def posterior_likelihoods(mean, cov, re, prior, cross=None):
    """``(lam, eta, lam_rf)`` of the random effects from Gaussian posteriors ``N(mean, cov)``.

    Under ``prior`` on the random effects (``(mean (r,) or (n, r), cov (r, r))``), the
    others held at ``cross[1]`` (n, f) where the likelihood precision's block between
    the two is ``cross[0]`` (n, r, f) (zero when ``cross`` is None): the proposals
    then follow the others linearly.

    Examples
    --------
    >>> import numpy as np
    >>> lam, eta, lam_rf = posterior_likelihoods(
    ...     [[0.5, 1.0]], [[[0.5, 0.0], [0.0, 1.0]]], [0], ([0.0], [[1.0]]),
    ...     cross=(np.full((1, 1, 1), 0.5), np.ones((1, 1))))
    >>> # at the held value 1 the shift is the posterior's: lam 1, centre 1
    >>> float(lam[0, 0, 0]), float(conditioned_shift(eta, lam_rf, np.ones((1, 1, 1)))[0, 0, 0])
    (1.0, 1.0)
    """
    mean, cov = np.asarray(mean, dtype=float), np.asarray(cov, dtype=float)
    re = np.asarray(re, dtype=int)
    n, d = mean.shape
    lam, eta = gaussian_likelihoods(mean[:, re], cov[:, re][:, :, re], *prior)
    if cross is None:
        return lam, eta, np.zeros((n, re.size, d - re.size))
    lam_rf = np.asarray(cross[0], dtype=float)
    # the shift at the held values is the one just found
    return (
        lam,
        eta + np.sum(lam_rf * np.asarray(cross[1], dtype=float)[:, None, :], axis=-1),
        lam_rf,
    )


def conditioned_shift(eta, lam_rf, phi_fix):
    """``eta - lam_rf phi_f``: the shifts (b, n, r) given ``phi_fix`` (b, n, f).

    ``lam_rf`` None (no parameter without random effect) gives ``eta`` for each of the b.

    Examples
    --------
    >>> import numpy as np
    >>> conditioned_shift(np.ones((1, 1)), np.full((1, 1, 1), 2.0), np.ones((3, 1, 1)))[:, 0, 0]
    array([-1., -1., -1.])
    """
    if lam_rf is None or lam_rf.shape[-1] == 0:
        return np.broadcast_to(eta, (phi_fix.shape[0], *np.shape(eta)))
    # broadcast products (no BLAS): row i depends on individual i alone, bit for bit
    return eta - np.sum(lam_rf[None] * phi_fix[:, :, None, :], axis=-1)


def gaussian_likelihoods(mean, cov, prior_mean, prior_cov, min_precision=1e-8):
    """Gaussian likelihood approximations from Gaussian posteriors ``N(mean, cov)``.

    The likelihood of a posterior ``N(mu_q, S_q)`` under the prior
    ``N(mu_0, S_0)``: precision ``S_q^-1 - S_0^-1`` (eigenvalues floored at
    ``min_precision``) and shift ``S_q^-1 mu_q - S_0^-1 mu_0``.

    Parameters
    ----------
    mean : array-like of shape (n, r)
    cov : array-like of shape (n, r, r)
    prior_mean : array-like of shape (r,) or (n, r)
        One prior mean for all, or one per individual.
    prior_cov, min_precision
        As in :func:`likelihood_gaussians`.

    Returns
    -------
    precision : ndarray of shape (n, r, r)
    shift : ndarray of shape (n, r)

    Examples
    --------
    >>> lam, eta = gaussian_likelihoods([[0.8]], [[[0.2]]], [0.0], [[1.0]])
    >>> float(lam[0, 0, 0]), float(eta[0, 0] / lam[0, 0, 0])
    (4.0, 1.0)
    """
    mean = np.asarray(mean, dtype=float)
    if prior_cov is None:
        prior_prec = np.zeros((mean.shape[-1], mean.shape[-1]))
    else:
        prior_cov = np.asarray(prior_cov, dtype=float)
        prior_prec = np.linalg.inv(np.diag(prior_cov) if prior_cov.ndim == 1 else prior_cov)
    post_prec = np.linalg.inv(np.asarray(cov, dtype=float))
    w, V = np.linalg.eigh(post_prec - prior_prec)
    precision = np.einsum("nrj,nj,nsj->nrs", V, np.maximum(w, min_precision), V)
    # S_q^-1 mu_q - S_0^-1 mu_0, written about the prior mean: the same where no
    # eigenvalue is floored, and translation-equivariant where one is (moving the
    # prior and the posterior by s moves the centre by s; the plain form moved it by
    # lam^-1 (S_q^-1 - S_0^-1) s, so a study in other units got other proposals: a
    # log-likelihood 12 apart at 50 draws on a sparse two-compartment study)
    prior_mean = np.broadcast_to(np.asarray(prior_mean, float), mean.shape)  # (r,) or (n, r)
    shift = np.einsum("nrs,ns->nr", precision, prior_mean) + np.einsum(
        "nrs,ns->nr", post_prec, mean - prior_mean
    )
    return precision, shift


def t_proposal(std, log_t0, lam, eta, m, psi_cov, inflation, pop_std=None, df=5.0):
    """Student t proposal draws of the random effects and their log importance ratios.

    The proposal of individual ``i`` at population means ``m`` (b, n, r) and
    covariance ``psi_cov`` (b, r, r) has precision ``lam_i + Psi^-1`` and
    centre ``(lam_i + Psi^-1)^-1 (eta_i + Psi^-1 m_i)``, its scale inflated by
    ``inflation``; ``std`` (n, K, r) are the standardised t draws and
    ``log_t0`` (n, K) their log densities.

    With ``pop_std`` (n, K_p, r) standard normals, ``K_p`` more draws come from
    the population distribution ``N(m, Psi)`` itself and the proposal is the
    defensive mixture of the two (Hesterberg 1995) in the proportions of the
    draws, ``g = a t + (1 - a) N(m, Psi)``, evaluated at every draw (the
    balance heuristic): a weight is then at most the likelihood over
    ``1 - a``, whatever the t part misses (``df`` is its degrees of freedom).

    Returns
    -------
    psi : ndarray of shape (b, n, K, r)
    log_ratio : ndarray of shape (b, n, K)
        ``log N(psi; m, Psi) - log g(psi)``.

    Examples
    --------
    >>> import numpy as np
    >>> std = np.zeros((1, 3, 1))
    >>> psi, lr = t_proposal(std, np.zeros((1, 3)), np.ones((1, 1, 1)), np.ones((1, 1)),
    ...                      np.zeros((1, 1, 1)), np.ones((1, 1, 1)), 1.5)
    >>> psi.shape, lr.shape, float(psi[0, 0, 0, 0])
    ((1, 1, 3, 1), (1, 1, 3), 0.5)
    """
    b, n, r = m.shape
    L_pop = np.linalg.cholesky(psi_cov)
    prec_pop = np.linalg.inv(psi_cov)
    prec = lam + prec_pop[:, None]  # (b, n, r, r)
    chol_prec = np.linalg.cholesky(prec)
    # broadcast products, not one BLAS call over all n rows: row i then depends on
    # individual i alone, bit for bit (subsets and permutations give the same rows)
    shift = np.sum(m[..., :, None] * prec_pop[:, None], axis=-2)  # m @ prec_pop
    centre = np.linalg.solve(prec, (eta + shift)[..., None])[..., 0]
    # scale S = inflation^2 prec^-1 = A A^T with A = inflation chol_prec^-T
    A = inflation * np.swapaxes(np.linalg.inv(chol_prec), -1, -2)
    log_det_A = np.sum(np.log(np.abs(np.diagonal(A, axis1=-2, axis2=-1))), axis=-1)
    log_norm = np.sum(np.log(np.diagonal(L_pop, axis1=1, axis2=2)), axis=1) + 0.5 * r * LOG_2PI
    k_p = 0 if pop_std is None else pop_std.shape[1]
    pop_std = np.zeros((n, 0, r)) if pop_std is None else pop_std
    consts = np.empty((b, n, 5))
    consts[..., 0] = log_det_A
    consts[..., 1] = log_norm[:, None]
    consts[..., 2] = gammaln((df + r) / 2) - gammaln(df / 2) - 0.5 * r * np.log(df * np.pi)
    consts[..., 3] = df
    consts[..., 4] = 1.0 / inflation
    K = std.shape[1] + k_p
    psi = np.empty((b, n, K, r))
    log_ratio = np.empty((b, n, K))
    t_mixture(
        np.ascontiguousarray(std, dtype=float),
        np.ascontiguousarray(pop_std, dtype=float),
        np.ascontiguousarray(log_t0, dtype=float),
        np.ascontiguousarray(centre),
        np.ascontiguousarray(A),
        np.ascontiguousarray(chol_prec),
        np.ascontiguousarray(m, dtype=float),
        np.ascontiguousarray(L_pop),
        np.ascontiguousarray(np.linalg.inv(L_pop)),
        consts,
        psi,
        log_ratio,
    )
    return psi, log_ratio


def keyed_t_draws(seed, keys, K, r, df):
    """Standardised multivariate t draws (n, K, r); row ``i`` depends on ``(seed, keys[i])``.

    Each draw takes ``r`` keyed normals ``e`` and a mixing variable
    ``chi2(df)``: the sum of ``df`` squared keyed normals when ``df`` is an
    integer, else the inverse chi-square CDF of one keyed normal. The draw is
    ``e sqrt(df / chi2)``.

    Examples
    --------
    >>> import numpy as np
    >>> keys = np.array([5, 7, 9], dtype=np.uint64)
    >>> a = keyed_t_draws(1, keys, 4, 2, 5.0)
    >>> b = keyed_t_draws(1, keys[[2, 0]], 4, 2, 5.0)
    >>> a.shape, bool(np.array_equal(a[[2, 0]], b))
    ((3, 4, 2), True)
    """
    keys = np.asarray(keys, dtype=np.uint64)
    if float(df).is_integer():
        return keyed_standard_t(seed, keys, K, r, int(df))
    out = np.empty((keys.size, K, r))
    for s in range(0, keys.size, _KEYED_ROWS):
        z = keyed_standard_normal(seed, keys[s : s + _KEYED_ROWS], K * (r + 1))
        z = z.reshape(-1, K, r + 1)
        mix = chi2.isf(ndtr(-z[..., r]), df)
        out[s : s + _KEYED_ROWS] = z[..., :r] * np.sqrt(df / mix)[..., None]
    return out
