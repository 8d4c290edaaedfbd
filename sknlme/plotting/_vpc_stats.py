"""Censoring-aware VPC statistics: quantiles with BLQ values and the fraction BLQ.

A value below the limit of quantification (BLQ) is only known to lie below
it, so it ranks below every quantified value. The ``q``-quantile of a bin is
then known exactly when it depends on quantified values only; when it
depends on a BLQ value it is not identifiable and is left out (NaN), as the
vpc R package and PsN draw it. Prediction correction (pcVPC) rescales the
quantified values only: a BLQ value stays below every quantified one
whatever its correction factor, so the censoring status is decided on the
uncorrected scale, before the correction. The fraction BLQ per bin,
observed against its simulated interval, shows what the censored region
hides (PsN's and vpc's BLQ panel).
"""

from __future__ import annotations

import numpy as np

__all__ = ["blq_fraction_band", "censored_quantiles", "simulated_bands"]


def censored_quantiles(values, censored, quantiles, axis=-1):
    """Quantiles of values some of which are censored below a limit.

    Censored values rank below every uncensored one; a quantile that
    depends on a censored value (numpy's linear interpolation between order
    statistics) is not identifiable and returned as NaN.

    Parameters
    ----------
    values : array-like
        Values (those of censored entries are ignored).
    censored : array-like of bool, same shape as ``values``
    quantiles : sequence of float in [0, 1]
    axis : int, default=-1
        Axis along which the quantiles are taken.

    Returns
    -------
    ndarray
        Shape ``values.shape`` without ``axis``, then ``len(quantiles)``.

    Examples
    --------
    >>> from sknlme.plotting import censored_quantiles
    >>> censored_quantiles([1.0, 1.0, 3.0, 4.0, 5.0], [True, True, False, False, False],
    ...                    [0.25, 0.5, 0.75]).tolist()
    [nan, 3.0, 4.0]
    """
    v = np.asarray(values, dtype=float)
    c = np.broadcast_to(np.asarray(censored, dtype=bool), v.shape)
    q = np.asarray(quantiles, dtype=float)
    if np.any((q < 0) | (q > 1)):
        raise ValueError(f"quantiles must lie in [0, 1], got {q.tolist()}")
    low = np.where(c, -np.inf, v)
    with np.errstate(invalid="ignore"):  # -inf - -inf in the interpolation: NaN, dropped
        out = np.quantile(low, q, axis=axis)
    out = np.moveaxis(out, 0, -1)
    return np.where(np.isfinite(out), out, np.nan)


def simulated_bands(per_replicate, levels=(0.05, 0.5, 0.95)):
    """Interval over replicates of each simulated quantile (NaN: below the limit).

    A replicate whose quantile is not identifiable has it below the limit, so
    it ranks lowest again; band ends that fall there are NaN (not drawn).

    Parameters
    ----------
    per_replicate : ndarray of shape (n_replicates, n_quantiles)
        Output of :func:`censored_quantiles` per replicate.
    levels : sequence of float, default=(0.05, 0.5, 0.95)

    Returns
    -------
    ndarray of shape (len(levels), n_quantiles)
    """
    p = np.asarray(per_replicate, dtype=float)
    return censored_quantiles(p.T, np.isnan(p.T), levels).T


def blq_fraction_band(sim_censored, levels=(0.05, 0.5, 0.95)):
    """Interval over replicates of the fraction of simulated values BLQ.

    Parameters
    ----------
    sim_censored : ndarray of bool, shape (n_replicates, n_values)
    levels : sequence of float, default=(0.05, 0.5, 0.95)

    Returns
    -------
    ndarray of shape (len(levels),)

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.plotting._vpc_stats import blq_fraction_band
    >>> blq_fraction_band(np.array([[True, False], [False, False], [True, True]])).tolist()
    [0.05, 0.5, 0.95]
    """
    return np.quantile(np.asarray(sim_censored, dtype=float).mean(axis=1), levels)
