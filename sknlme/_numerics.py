"""Numerical constants and central differences shared by the subpackages."""

from __future__ import annotations

import numpy as np

__all__ = ["LOG_2PI", "central_points", "central_quotients"]

LOG_2PI = float(np.log(2.0 * np.pi))


def central_points(x, rel_step):
    """The ``2 n`` points of a central difference at ``x`` and their steps.

    Step ``h_j = rel_step * max(1, |x_j|)``; row ``2 j`` is ``x + h_j e_j`` and
    row ``2 j + 1`` is ``x - h_j e_j``, so all points can be evaluated in one
    batch.

    Returns
    -------
    points : ndarray of shape (2 n, n)
    h : ndarray of shape (n,)

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme._numerics import central_points, central_quotients
    >>> xs, h = central_points(np.array([1.0, 2.0]), 1e-5)
    >>> values = np.array([np.sum(p**2) for p in xs])
    >>> np.round(central_quotients(values, h), 6)
    array([2., 4.])
    """
    x = np.asarray(x, dtype=float).reshape(-1)
    h = rel_step * np.maximum(1.0, np.abs(x))
    points = np.repeat(x[None], 2 * x.size, axis=0)
    steps = np.arange(x.size)
    points[2 * steps, steps] += h
    points[2 * steps + 1, steps] -= h
    return points, h


def central_quotients(values, h):
    """Derivatives from values at :func:`central_points` (first axis: the 2 n points).

    ``values`` of shape (2 n, ...) give derivatives of shape (..., n): the
    last axis is the direction of the step.
    """
    values = np.asarray(values, dtype=float)
    diff = (values[0::2] - values[1::2]) / (
        2 * np.asarray(h).reshape((-1,) + (1,) * (values.ndim - 1))
    )
    return np.moveaxis(diff, 0, -1)
