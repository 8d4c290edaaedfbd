"""Axis labels with units, and a binned-median smoother (no statsmodels)."""

from __future__ import annotations

import numpy as np

__all__ = ["axis_label", "binned_median_smoother"]

_NO_UNITS = "no units given"


def axis_label(quantity, kind, units=None):
    """Axis label ``"quantity (unit)"``; without a unit it says none was given.

    Parameters
    ----------
    quantity : str
        What the axis shows, e.g. ``"time"`` or ``"DV"``.
    kind : {"time", "conc"}
        Which entry of ``units`` applies (``"conc"``: the observed variable).
    units : dict, default=None
        ``{"time": "h", "conc": "mg/L"}``; a missing entry is reported as
        "no units given".

    Returns
    -------
    str

    Examples
    --------
    >>> from sknlme.plotting import axis_label
    >>> axis_label("time", "time", {"time": "h"})
    'time (h)'
    >>> axis_label("DV", "conc")
    'DV (no units given)'
    """
    if kind not in ("time", "conc"):
        raise ValueError(f"kind must be 'time' or 'conc', got {kind!r}")
    if units is not None and not isinstance(units, dict):
        raise TypeError(f"units must be a dict like {{'time': 'h', 'conc': 'mg/L'}}, got {units!r}")
    unit = (units or {}).get(kind)
    return f"{quantity} ({unit if unit else _NO_UNITS})"


def binned_median_smoother(x, y, n_bins=None):
    """Medians of ``x`` and ``y`` in bins of equal counts along ``x`` (a robust smoother).

    A scatter-plot smoother in the role of LOWESS: the points are sorted by
    ``x`` and cut into ``n_bins`` groups of (nearly) equal size; each group
    gives one point (median x, median y).

    Parameters
    ----------
    x, y : array-like of shape (n,)
        Non-finite pairs are dropped.
    n_bins : int, default=None
        ``clip(n // 10, 3, 12)`` when None.

    Returns
    -------
    xs, ys : ndarray of shape (n_bins,)
        Empty when fewer than 3 finite points.

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.plotting import binned_median_smoother
    >>> x = np.arange(100.0)
    >>> xs, ys = binned_median_smoother(x, 2 * x, n_bins=4)
    >>> np.allclose(ys, 2 * xs), len(xs)
    (True, 4)
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 3:
        return np.empty(0), np.empty(0)
    n_bins = int(np.clip(len(x) // 10, 3, 12)) if n_bins is None else int(n_bins)
    order = np.argsort(x, kind="stable")
    groups = np.array_split(order, min(n_bins, len(x)))
    xs = np.array([np.median(x[g]) for g in groups])
    ys = np.array([np.median(y[g]) for g in groups])
    return xs, ys
