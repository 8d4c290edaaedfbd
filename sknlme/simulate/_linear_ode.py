"""Compiled exact solver of dosed linear ODE systems ``A' = M A`` (numba).

Between doses a linear system with constant coefficients has the exact
solution ``A(t + s) = expm(M s) A(t)``; a bolus dose adds its amount to the
dosed state. The kernel keeps two states per individual:

* the *dose-train* state, carried from dose to dose (regular dosing
  intervals reuse one cached ``expm(M tau)``), and
* for every observation time, the latest dose-train state before it,
  propagated by one more ``expm``.

So an individual costs one matrix exponential per observation plus one per
*distinct* dosing interval, whatever the order of the observation times.
The exponential is Higham's (2005) scaling and squaring with the [13/13]
Padé approximant, scaled so that ``||M s||_1 <= 5.37`` (backward error at
the unit round-off), on small dense matrices without allocation in the
inner loop.
"""

from __future__ import annotations

import numba
import numpy as np

_PADE13 = np.array(
    [
        64764752532480000.0,
        32382376266240000.0,
        7771770303897600.0,
        1187353796428800.0,
        129060195264000.0,
        10559470521600.0,
        670442572800.0,
        33522128640.0,
        1323241920.0,
        40840800.0,
        960960.0,
        16380.0,
        182.0,
        1.0,
    ]
)
_THETA13 = 5.371920351148152


@numba.njit(cache=True)
def _matmul(a, b, out):
    n = a.shape[0]
    for i in range(n):
        for j in range(n):
            acc = 0.0
            for k in range(n):
                acc += a[i, k] * b[k, j]
            out[i, j] = acc


@numba.njit(cache=True)
def _solve_inplace(a, b):
    """Solve ``a x = b`` for square ``b`` (overwritten with ``x``); partial pivoting."""
    n = a.shape[0]
    for c in range(n):
        p = c
        for r in range(c + 1, n):
            if abs(a[r, c]) > abs(a[p, c]):
                p = r
        if p != c:
            for j in range(n):
                a[c, j], a[p, j] = a[p, j], a[c, j]
                b[c, j], b[p, j] = b[p, j], b[c, j]
        piv = a[c, c]
        for r in range(c + 1, n):
            f = a[r, c] / piv
            if f != 0.0:
                for j in range(c, n):
                    a[r, j] -= f * a[c, j]
                for j in range(n):
                    b[r, j] -= f * b[c, j]
    for c in range(n - 1, -1, -1):
        for j in range(n):
            acc = b[c, j]
            for k in range(c + 1, n):
                acc -= a[c, k] * b[k, j]
            b[c, j] = acc / a[c, c]


@numba.njit(cache=True)
def expm_small(m, s, out, work):
    """``expm(m * s)`` into ``out`` for a small square ``m``; ``work`` is (6, n, n) scratch.

    Parameters
    ----------
    m : ndarray of shape (n, n)
    s : float
        Time step (``>= 0``).
    out : ndarray of shape (n, n)
        Receives the result.
    work : ndarray of shape (6, n, n)
        Scratch space.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.linalg import expm
    >>> from sknlme.simulate import expm_small
    >>> m = np.array([[-1.0, 0.0], [1.0, -2.0]])
    >>> out, work = np.empty((2, 2)), np.empty((6, 2, 2))
    >>> expm_small(m, 3.0, out, work)
    >>> bool(np.allclose(out, expm(3.0 * m), rtol=1e-13, atol=1e-16))
    True
    """
    n = m.shape[0]
    a, a2, a4, a6, u, v = work[0], work[1], work[2], work[3], work[4], work[5]
    norm = 0.0
    for j in range(n):
        col = 0.0
        for i in range(n):
            col += abs(m[i, j])
        norm = max(norm, col)
    norm *= s
    sq = 0
    if norm > _THETA13:
        sq = int(np.ceil(np.log2(norm / _THETA13)))
    scale = s / 2.0**sq
    for i in range(n):
        for j in range(n):
            a[i, j] = m[i, j] * scale
    _matmul(a, a, a2)
    _matmul(a2, a2, a4)
    _matmul(a4, a2, a6)
    b = _PADE13
    # u = A (A6 (b13 A6 + b11 A4 + b9 A2) + b7 A6 + b5 A4 + b3 A2 + b1 I)
    # v = A6 (b12 A6 + b10 A4 + b8 A2) + b6 A6 + b4 A4 + b2 A2 + b0 I
    for i in range(n):
        for j in range(n):
            out[i, j] = b[13] * a6[i, j] + b[11] * a4[i, j] + b[9] * a2[i, j]
    _matmul(a6, out, u)
    for i in range(n):
        for j in range(n):
            u[i, j] += b[7] * a6[i, j] + b[5] * a4[i, j] + b[3] * a2[i, j]
        u[i, i] += b[1]
    _matmul(a, u, out)  # out = U
    for i in range(n):
        for j in range(n):
            u[i, j] = b[12] * a6[i, j] + b[10] * a4[i, j] + b[8] * a2[i, j]
    _matmul(a6, u, v)
    for i in range(n):
        for j in range(n):
            v[i, j] += b[6] * a6[i, j] + b[4] * a4[i, j] + b[2] * a2[i, j]
        v[i, i] += b[0]
    # (V - U) R = V + U
    for i in range(n):
        for j in range(n):
            uu = out[i, j]
            a[i, j] = v[i, j] - uu
            u[i, j] = v[i, j] + uu
    _solve_inplace(a, u)
    for _ in range(sq):
        _matmul(u, u, a)
        for i in range(n):
            for j in range(n):
                u[i, j] = a[i, j]
    for i in range(n):
        for j in range(n):
            out[i, j] = u[i, j]


@numba.njit(cache=True)
def _propagate(e, x, y):
    n = x.shape[0]
    for i in range(n):
        acc = 0.0
        for k in range(n):
            acc += e[i, k] * x[k]
        y[i] = acc


@numba.njit(parallel=True, cache=True)
def linear_dosed_solve(m, times, dose_times, dose_amounts, dose_state, out_states, out):
    """States of ``A' = M A`` with bolus doses, at the observation times.

    Parameters
    ----------
    m : ndarray of shape (n, S, S)
        System matrix of each individual.
    times : ndarray of shape (n, T)
        Observation times (any order).
    dose_times, dose_amounts : ndarray of shape (n, D)
        Bolus doses into state ``dose_state``; zero amounts add nothing.
    dose_state : int
        Index of the dosed state.
    out_states : ndarray of shape (k,), int64
        States to report.
    out : ndarray of shape (n, T, k)
        Receives the states ``A[out_states]`` at ``times`` (0 before the first
        dose; a dose at an observation time counts as given).

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.simulate import linear_dosed_solve
    >>> m = np.array([[[-1.0, 0.0], [1.0, -0.5]]])  # depot -> central -> out
    >>> out = np.empty((1, 2, 1))
    >>> linear_dosed_solve(m, np.array([[1.0, 2.0]]), np.array([[0.0]]), np.array([[1.0]]),
    ...                    0, np.array([1]), out)
    >>> bool(np.allclose(out[0, :, 0], 2 * (np.exp(-0.5 * np.r_[1, 2]) - np.exp(-np.r_[1, 2]))))
    True
    """
    n, S = m.shape[0], m.shape[1]
    T, D = times.shape[1], dose_times.shape[1]
    k = out_states.shape[0]
    for i in numba.prange(n):
        work = np.empty((6, S, S))
        e = np.empty((S, S))
        e_tau = np.empty((S, S))
        x = np.zeros(S)
        y = np.empty(S)
        mi = m[i]
        order = np.argsort(dose_times[i], kind="mergesort")
        obs = np.argsort(times[i], kind="mergesort")
        tau = -1.0
        t_cur = -np.inf
        d = 0  # next dose (in order)
        for jj in range(T):
            j = obs[jj]
            t = times[i, j]
            # doses up to and including t join the dose train
            while d < D and dose_times[i, order[d]] <= t:
                td = dose_times[i, order[d]]
                if t_cur > -np.inf and td > t_cur:
                    step = td - t_cur
                    if step != tau:
                        expm_small(mi, step, e_tau, work)
                        tau = step
                    _propagate(e_tau, x, y)
                    for s in range(S):
                        x[s] = y[s]
                t_cur = td
                x[dose_state] += dose_amounts[i, order[d]]
                d += 1
            if t_cur == -np.inf:
                for c in range(k):
                    out[i, j, c] = 0.0
                continue
            if t > t_cur:
                expm_small(mi, t - t_cur, e, work)
                _propagate(e, x, y)
            else:
                for s in range(S):
                    y[s] = x[s]
            for c in range(k):
                out[i, j, c] = y[out_states[c]]
