"""Offsets ``c_ik = -log p0(phi_ik)`` of the amortized likelihood, and draw checks."""

from __future__ import annotations

import numpy as np

from .._numerics import LOG_2PI
from . import _kernels

__all__ = ["amortized_offsets"]


def _as_samples(samples):
    samples = np.asarray(samples)
    if samples.ndim != 3:
        raise ValueError(f"samples must have shape (n, K, d), got {samples.shape}")
    if samples.dtype not in (np.float32, np.float64):
        samples = samples.astype(np.float32 if samples.dtype == np.float16 else np.float64)
    n, K, d = samples.shape
    if n < 1 or K < 1 or d < 1:
        raise ValueError(
            f"samples need n >= 1 individuals, K >= 1 draws, d >= 1; got {samples.shape}"
        )
    return samples


def amortized_offsets(samples, prior_mean=None, prior_cov=None, prior=None):
    """Offsets ``c_ik = -log p0(phi_ik)`` of the amortized likelihood.

    Parameters
    ----------
    samples : array-like of shape (n, K, d)
        Posterior draws (float32 or float64; not copied to float64).
    prior_mean : array-like of shape (d,)
        Mean ``mu0`` of the (normal) training prior.
    prior_cov : array-like of shape (d,) or (d, d)
        Variances or covariance ``Sigma0`` of the training prior.
    prior : NormalPrior or UniformPrior, default=None
        The training prior instead; draws where its density is 0 (outside a box)
        get ``-inf``, zero weight (the network's error: the posterior has no mass there).

    Returns
    -------
    offsets : ndarray of shape (n, K), float64

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.stats import multivariate_normal
    >>> from sknlme.models import UniformPrior
    >>> phi = np.random.default_rng(0).normal(size=(2, 3, 2)).astype(np.float32)
    >>> c = amortized_offsets(phi, [0.0, 1.0], [1.0, 4.0])
    >>> ref = -multivariate_normal([0.0, 1.0], np.diag([1.0, 4.0])).logpdf(phi.astype(float))
    >>> np.allclose(c, ref)
    True
    >>> amortized_offsets([[[0.5], [2.5]]], prior=UniformPrior([0.0], [2.0]))
    array([[0.69314718,       -inf]])
    """
    if prior is not None and prior.kind != "normal":
        log_p0 = np.asarray(prior.log_density(_as_samples(samples)), dtype=float)
        return np.where(np.isfinite(log_p0), -log_p0, -np.inf)
    prior_mean, prior_cov = (prior_mean, prior_cov) if prior is None else (prior.mean, prior.cov)
    samples = np.ascontiguousarray(_as_samples(samples))
    d = samples.shape[2]
    mean = np.asarray(prior_mean, dtype=float).reshape(-1)
    cov = np.asarray(prior_cov, dtype=float)
    cov = np.diag(cov) if cov.ndim == 1 else cov
    if mean.shape != (d,) or cov.shape != (d, d):
        raise ValueError(
            f"prior_mean must have shape ({d},) and prior_cov ({d},) or ({d}, {d}); "
            f"got {mean.shape} and {cov.shape}"
        )
    try:
        L = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise ValueError("prior_cov must be symmetric positive definite") from None
    linv = np.linalg.inv(L)
    log_norm = np.sum(np.log(np.diag(L))) + 0.5 * d * LOG_2PI
    return _kernels.neg_gauss_logpdf(samples, mean, linv, log_norm)
