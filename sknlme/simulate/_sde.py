"""Compiled Euler–Maruyama kernels with independent, reproducible noise per path.

Every simulated individual owns a random stream: a SplitMix64 generator
(Steele, Lea & Flood 2014; a 64-bit counter passed through a bijective
mixing function, which passes BigCrush) started from a 64-bit seed that the
caller draws, one per individual, from its numpy random generator. Normals
come in pairs from Marsaglia's polar method. The stream of an individual
depends on its seed alone, never on the thread that runs it, so results are
identical for any number of threads and any scheduling, and two individuals
share a path only if they share a seed (probability about n**2 / 2**64).

The original code seeded numpy's global generator inside the compiled loop,
so every simulation of a batch used the same Brownian path; here each path
draws its own noise.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from ._random import _GAMMA as _GOLDEN
from ._random import mix64 as _mix64

_S11 = np.uint64(11)
_TO_UNIT = 2.0**-53


def draw_seeds(rng, n):
    """Draw ``n`` 64-bit stream seeds from a numpy ``RandomState`` or ``Generator``."""
    if isinstance(rng, np.random.Generator):
        return rng.integers(0, 2**63, size=n, dtype=np.int64).astype(np.uint64)
    return rng.randint(0, 2**63, size=n, dtype=np.int64).astype(np.uint64)


@nb.njit(cache=True)
def stream_start(seed):
    """Initial SplitMix64 state of the stream of ``seed`` (a uint64)."""
    return _mix64(seed ^ _GOLDEN)


@nb.njit(cache=True)
def normal_pair(state):
    """Two independent standard normals; returns ``(z1, z2, new_state)``."""
    while True:
        state += _GOLDEN
        v1 = 2.0 * ((_mix64(state) >> _S11) * _TO_UNIT) - 1.0
        state += _GOLDEN
        v2 = 2.0 * ((_mix64(state) >> _S11) * _TO_UNIT) - 1.0
        r2 = v1 * v1 + v2 * v2
        if 0.0 < r2 < 1.0:
            f = np.sqrt(-2.0 * np.log(r2) / r2)
            return v1 * f, v2 * f, state


@nb.njit(parallel=True, cache=True)
def normal_pairs(seeds, n_pairs):
    """Standard normals of each stream, shape (n, n_pairs, 2) (for tests and checks).

    Examples
    --------
    >>> import numpy as np
    >>> z = normal_pairs(np.array([1, 2], dtype=np.uint64), 5000)
    >>> z.shape, bool(abs(z.mean()) < 0.05), bool(abs(z.std() - 1) < 0.05)
    ((2, 5000, 2), True, True)
    """
    out = np.empty((seeds.shape[0], n_pairs, 2))
    for i in nb.prange(seeds.shape[0]):
        state = stream_start(seeds[i])
        for j in range(n_pairs):
            z1, z2, state = normal_pair(state)
            out[i, j, 0] = z1
            out[i, j, 1] = z2
    return out


@nb.njit(parallel=True, cache=True)
def em_translation(params, seeds, times, dt, out):
    """Euler–Maruyama for the mRNA translation chemical Langevin equation.

    States ``(m, p)`` from ``(m0, 0)`` at ``t0``::

        dm = -delta m dt + sqrt(delta m) dW1
        dp = (k m - gamma p) dt + sqrt(k m + gamma p) dW2

    on the grid ``t0 + j dt``, each state floored at 0 after every step (as
    in the reference code). The observable ``log(scale p + offset)`` on that
    grid is interpolated linearly to ``times``; times ``<= t0`` get
    ``log(offset)``. Once ``m = p = 0`` the state is absorbed and the path
    stops drawing noise (the result is the same).

    Parameters
    ----------
    params : ndarray of shape (n, 7)
        Natural-scale ``delta, gamma, k, m0, scale, t0, offset``.
    seeds : ndarray of shape (n,), uint64
        One stream seed per individual (see :func:`draw_seeds`).
    times : ndarray of shape (n, T)
        Observation times, non-decreasing per row.
    dt : float
        Step size.
    out : ndarray of shape (n, T)
        Filled with the noise-free observable.
    """
    n, T = times.shape
    sq = np.sqrt(dt)
    for i in nb.prange(n):
        delta, gamma, k, m0 = params[i, 0], params[i, 1], params[i, 2], params[i, 3]
        scale, t0, offset = params[i, 4], params[i, 5], params[i, 6]
        y0 = np.log(offset)
        j = 0
        while j < T and times[i, j] <= t0:
            out[i, j] = y0
            j += 1
        state = stream_start(seeds[i])
        m = m0
        p = 0.0
        p_prev = 0.0
        t_prev = t0
        step = 0
        while j < T:
            if m == 0.0 and p == 0.0:  # absorbed: y stays at log(scale p + offset)
                y_abs = np.log(offset)  # p_prev = p = 0 here
                while j < T:
                    out[i, j] = y_abs
                    j += 1
                break
            step += 1
            t_next = t0 + step * dt
            z1, z2, state = normal_pair(state)
            m_new = m - delta * m * dt + np.sqrt(delta * m) * sq * z1
            p_new = p + (k * m - gamma * p) * dt + np.sqrt(k * m + gamma * p) * sq * z2
            m = max(m_new, 0.0)
            p = max(p_new, 0.0)
            if times[i, j] <= t_next:  # an observation in (t_prev, t_next]: interpolate
                y_a = np.log(scale * p_prev + offset)
                y_b = np.log(scale * p + offset)
                while j < T and times[i, j] <= t_next:
                    out[i, j] = y_a + (y_b - y_a) * ((times[i, j] - t_prev) / dt)
                    j += 1
            t_prev = t_next
            p_prev = p
