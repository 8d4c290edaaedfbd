"""Proposal ingredients of the importance likelihood.

Gaussian approximations of the individual likelihoods from posterior draws,
and the standardised Student t draws, keyed by individual.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr
from scipy.stats import chi2

from ..simulate import keyed_standard_normal

__all__ = ["keyed_t_draws", "likelihood_gaussians"]

_KEYED_ROWS = 4096  # individuals per block of keyed proposal normals


def likelihood_gaussians(draws, prior_mean, prior_cov, min_precision=1e-8):
    """Gaussian approximations of individual likelihoods from posterior draws.

    Parameters
    ----------
    draws : array-like of shape (n, K, r)
        Posterior draws under the prior ``N(prior_mean, prior_cov)``.
    prior_mean : array-like of shape (r,)
    prior_cov : array-like of shape (r,) or (r, r)
        Variances or covariance of the prior.
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
    prior_cov = np.asarray(prior_cov, dtype=float)
    prior_prec = np.linalg.inv(np.diag(prior_cov) if prior_cov.ndim == 1 else prior_cov)
    post_prec = np.linalg.inv(cov)
    w, V = np.linalg.eigh(post_prec - prior_prec)
    precision = np.einsum("nrj,nj,nsj->nrs", V, np.maximum(w, min_precision), V)
    shift = np.einsum("nrs,ns->nr", post_prec, mean) - prior_prec @ np.asarray(prior_mean, float)
    return precision, shift


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
    integral = float(df).is_integer()
    m = int(df) if integral else 1
    out = np.empty((keys.size, K, r))
    for s in range(0, keys.size, _KEYED_ROWS):
        z = keyed_standard_normal(seed, keys[s : s + _KEYED_ROWS], K * (r + m))
        z = z.reshape(-1, K, r + m)
        if integral:
            mix = np.sum(z[..., r:] ** 2, axis=2)
        else:
            mix = chi2.isf(ndtr(-z[..., r]), df)
        out[s : s + _KEYED_ROWS] = z[..., :r] * np.sqrt(df / mix)[..., None]
    return out
