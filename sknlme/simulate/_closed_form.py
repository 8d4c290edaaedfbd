"""Compiled closed-form simulators: one-compartment oral PK and simple mRNA.

Every kernel works on a whole population at once (``numba.prange`` over
individuals), writes into preallocated output and allocates nothing per
individual. Both models rest on the *Bateman function*

    B(a, b, s) = (exp(-a s) - exp(-b s)) / (b - a),   s >= 0,

which is symmetric in ``(a, b)``. With ``lo = min(a, b)``, ``hi = max(a, b)``
and ``x = (hi - lo) s >= 0`` it equals ``exp(-lo s) s g(x)`` where
``g(x) = (1 - exp(-x)) / x = -expm1(-x) / x`` (``g(0) = 1``): no cancellation
when ``a ≈ b``, no overflow when ``a << b``, and the limit ``a = b`` is
``s exp(-a s)`` exactly.

Residual error codes (shared with :mod:`sknlme.models._error`):
0 additive ``sd = a``; 1 proportional ``sd = b |f|``; 2 combined
``sd = sqrt(a² + b² f²)``; ``a`` and ``b`` are the exponentiated error
parameters (``b`` is the first one for code 1).
"""

from __future__ import annotations

import numba
import numpy as np

from .._numerics import LOG_2PI
from ._random import normal, stream

# fast-math without the no-NaN / no-Inf assumptions (masks are explicit anyway)
_FM = {"nsz", "arcp", "contract", "afn", "reassoc"}
_HALF_LOG_2PI = 0.5 * LOG_2PI
ADDITIVE, PROPORTIONAL, COMBINED = 0, 1, 2


@numba.njit(fastmath=_FM)
def bateman(a, b, s):
    """``(exp(-a s) - exp(-b s)) / (b - a)`` for ``s >= 0``, stable as ``a -> b``.

    Parameters
    ----------
    a, b : float
        Rate constants (any order; equal rates give the limit ``s exp(-a s)``).
    s : float
        Time since the dose, ``>= 0``.

    Returns
    -------
    float

    Examples
    --------
    >>> from sknlme.simulate import bateman
    >>> round(bateman(1.0, 2.0, 1.0), 6), round(bateman(1.0, 1.0, 1.0), 6)
    (0.232544, 0.367879)
    """
    lo, hi = min(a, b), max(a, b)
    x = (hi - lo) * s
    if x >= 0.5:  # plain difference: cancellation costs at most 1/(1-e^-0.5) < 2.6 ulp
        return (np.exp(-lo * s) - np.exp(-hi * s)) / (hi - lo)
    return np.exp(-lo * s) * s * _g(x)


@numba.njit(fastmath=_FM)
def _g(x):
    """``(1 - exp(-x)) / x`` for ``0 <= x``, with ``g(0) = 1``."""
    if x < 1e-5:
        return 1.0 - x * (0.5 - x / 6.0)  # Taylor, error < x**3 / 24 < 5e-17
    return -np.expm1(-x) / x


# ----------------------------------------------------------------- residual error
@numba.njit(fastmath=_FM)
def _sd(code, f, a, b):
    if code == ADDITIVE:
        return a
    if code == PROPORTIONAL:
        return b * abs(f)
    return np.sqrt(a * a + b * b * f * f)


@numba.njit(fastmath=_FM)
def _error_scales(code, e):
    """``(a, b)`` from the error parameters ``e`` (log scale)."""
    if code == ADDITIVE:
        return np.exp(e[0]), 0.0
    if code == PROPORTIONAL:
        return 0.0, np.exp(e[0])
    return np.exp(e[0]), np.exp(e[1])


@numba.njit(fastmath=_FM)
def _add_noise_row(row, code, a, b, start):
    st = start
    for j in range(row.shape[0]):
        z, st = normal(st)
        row[j] += _sd(code, row[j], a, b) * z


@numba.njit(fastmath=_FM)
def _loglik_row(pred, y, mask, code, a, b):
    if code == ADDITIVE and a > 0.0:
        # one log per draw, not one per observation: the oral kernel took 0.235 s per
        # million draws of 11 observations, 0.21 s so (2 loaded cores)
        ss, m = 0.0, 0
        for j in range(pred.shape[0]):
            if mask[j]:
                r = y[j] - pred[j]
                ss += r * r
                m += 1
        return -0.5 * ss / (a * a) - m * (np.log(a) + _HALF_LOG_2PI)
    total = 0.0
    for j in range(pred.shape[0]):
        if mask[j]:
            sd = _sd(code, pred[j], a, b)
            r = y[j] - pred[j]
            if sd > 0.0:
                z = r / sd
                total += -0.5 * z * z - np.log(sd) - _HALF_LOG_2PI
            elif r != 0.0:  # zero predicted SD: only an exact match is possible
                total += -np.inf
    return total


@numba.njit(parallel=True, fastmath=_FM, cache=True)
def add_noise(pred, err, code, seed):
    """Add residual noise in place: ``pred`` (n, T), ``err`` (n, n_error_params)."""
    for i in numba.prange(pred.shape[0]):
        a, b = _error_scales(code, err[i])
        _add_noise_row(pred[i], code, a, b, stream(seed, i))


@numba.njit(parallel=True, fastmath=_FM, cache=True)
def gaussian_loglik(pred, err, values, mask, code):
    """Residual log-likelihood: ``pred`` (n, K, T), ``err`` (n, K, m), values/mask (n, T)."""
    n, K = pred.shape[0], pred.shape[1]
    out = np.empty((n, K))
    for i in numba.prange(n):
        for k in range(K):
            a, b = _error_scales(code, err[i, k])
            out[i, k] = _loglik_row(pred[i, k], values[i], mask[i], code, a, b)
    return out


# ------------------------------------------------------- one compartment, oral dose
@numba.njit(fastmath=_FM)
def _oral1c_row(p, times, dose_t, dose_a, out):
    ke, ka = np.exp(p[0]), np.exp(p[1])
    coef = np.exp(p[0] + p[1] - p[2])  # ke ka / Cl
    for j in range(times.shape[0]):
        c = 0.0
        for d in range(dose_t.shape[0]):
            s = times[j] - dose_t[d]
            if s > 0.0:
                c += dose_a[d] * bateman(ke, ka, s)
        out[j] = coef * c


@numba.njit(parallel=True, fastmath=_FM, cache=True)
def oral1c_predict(phi, times, dose_t, dose_a, out):
    """Concentrations of SSfol, superposed over doses, into ``out`` (n, T).

    Parameters
    ----------
    phi : ndarray of shape (n, >=3)
        ``log ke``, ``log ka``, ``log Cl`` per individual (further columns ignored).
    times : ndarray of shape (n, T)
    dose_t, dose_a : ndarray of shape (n, D)
        Dose times and amounts; padded doses have amount 0.
    out : ndarray of shape (n, T)
        Written in place.

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.models import OneCompartmentOral
    >>> from sknlme.simulate import oral1c_predict
    >>> phi = OneCompartmentOral().prior_mean[None, :]
    >>> out = np.empty((1, 3))
    >>> oral1c_predict(phi, np.array([[0.0, 1.0, 24.0]]), np.zeros((1, 1)),
    ...                np.full((1, 1), 4.0), out)
    >>> float(out[0, 0]), bool(np.all(out[0, 1:] > 0))
    (0.0, True)
    """
    for i in numba.prange(phi.shape[0]):
        _oral1c_row(phi[i], times[i], dose_t[i], dose_a[i], out[i])


@numba.njit(parallel=True, fastmath=_FM, cache=True)
def oral1c_simulate(phi, times, dose_t, dose_a, code, seed, out):
    """Noisy concentrations into ``out`` (n, T); error parameters are ``phi[:, 3:]``.

    Parameters
    ----------
    phi : ndarray of shape (n, 3 + n_error)
        Structural parameters as :func:`oral1c_predict`, then the log-scale
        error parameters.
    times : ndarray of shape (n, T)
    dose_t, dose_a : ndarray of shape (n, D)
    code : int
        Residual error model (:attr:`ErrorModel.code <sknlme.models.ErrorModel>`).
    seed : numpy.uint64
        Row ``i`` draws from individual ``i``'s stream of this seed (:func:`draw_seed`).
    out : ndarray of shape (n, T)
        Written in place.

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.models import ErrorModel, OneCompartmentOral
    >>> from sknlme.simulate import draw_seed, oral1c_simulate
    >>> phi = OneCompartmentOral().prior_mean[None, :]
    >>> out = np.empty((1, 3))
    >>> oral1c_simulate(phi, np.array([[0.5, 1.0, 24.0]]), np.zeros((1, 1)),
    ...                 np.full((1, 1), 4.0), ErrorModel("additive").code,
    ...                 draw_seed(np.random.RandomState(0)), out)
    >>> bool(np.all(np.isfinite(out)))
    True
    """
    for i in numba.prange(phi.shape[0]):
        _oral1c_row(phi[i], times[i], dose_t[i], dose_a[i], out[i])
        a, b = _error_scales(code, phi[i, 3:])
        _add_noise_row(out[i], code, a, b, stream(seed, i))


@numba.njit(fastmath=_FM)
def observed_length(mask):
    """Samples up to the row's last observed one: the right-padding after it (the last
    time repeated) costs O(doses) per sample and adds nothing to a likelihood (broad
    designs, 16 of 30 samples on average: a 100-subject two-compartment fit's passes
    went from 1.6 to 1.2 us per draw)."""
    m = mask.shape[0]
    while m > 0 and not mask[m - 1]:
        m -= 1
    return m


@numba.njit(parallel=True, fastmath=_FM, cache=True)
def oral1c_loglik(phi, times, dose_t, dose_a, values, mask, code, bounds):
    """Log-likelihood (n, K) for ``phi`` (n, K, d); ``bounds`` split individuals in chunks."""
    n, K, T = phi.shape[0], phi.shape[1], times.shape[1]
    out = np.empty((n, K))
    n_chunks = bounds.shape[0] - 1
    buf = np.empty((n_chunks, T))
    for c in numba.prange(n_chunks):
        for i in range(bounds[c], bounds[c + 1]):
            m = observed_length(mask[i])
            for k in range(K):
                _oral1c_row(phi[i, k], times[i, :m], dose_t[i], dose_a[i], buf[c, :m])
                a, b = _error_scales(code, phi[i, k, 3:])
                out[i, k] = _loglik_row(buf[c, :m], values[i, :m], mask[i, :m], code, a, b)
    return out


# ---------------------------------------------------------- mRNA transfection, simple
@numba.njit(fastmath=_FM)
def _mrna_row(p, times, out):
    """``log(kms B(gamma, delta, t - t0) + offset)``, 0 expression before ``t0``.

    On equally spaced times ``exp(-r s)`` is advanced by one multiplication
    with ``exp(-r h)``: exact exponentials are recomputed whenever the
    accumulated time ``s_rec`` drifts from ``s`` by more than ``1e-13 s``, so
    the relative error stays below ``r 1e-13 s + 2 ulp`` per step (< 1e-10).
    """
    delta, gamma = np.exp(p[0]), np.exp(p[1])
    kms, t0, offset = np.exp(p[2]), np.exp(p[3]), np.exp(p[4])
    lo, hi = min(delta, gamma), max(delta, gamma)
    e_lo = e_hi = f_lo = f_hi = s_rec = 0.0
    step = -1.0
    for j in range(times.shape[0]):
        s = times[j] - t0
        if s <= 0.0:
            out[j] = np.log(offset)
            continue
        if step > 0.0 and abs(s_rec + step - s) <= 1e-13 * s:
            e_lo *= f_lo
            e_hi *= f_hi
            s_rec += step
        else:
            if s_rec > 0.0:  # new step length: remember it for the next points
                step = s - s_rec
                f_lo, f_hi = np.exp(-lo * step), np.exp(-hi * step)
            e_lo, e_hi, s_rec = np.exp(-lo * s), np.exp(-hi * s), s
        x = (hi - lo) * s
        if x >= 0.5:
            b = (e_lo - e_hi) / (hi - lo)
        else:
            b = e_lo * s * _g(x)
        out[j] = np.log(kms * b + offset)


@numba.njit(parallel=True, fastmath=_FM, cache=True)
def mrna_predict(phi, times, out):
    """``log(p(t) + offset)`` of the simple mRNA model into ``out`` (n, T).

    Parameters
    ----------
    phi : ndarray of shape (n, 6)
        Parameters in :class:`~sknlme.models.MRNATransfection` order.
    times : ndarray of shape (n, T)
    out : ndarray of shape (n, T)
        Written in place.

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.models import MRNATransfection
    >>> from sknlme.simulate import mrna_predict
    >>> phi = MRNATransfection().prior_mean[None, :]
    >>> out = np.empty((1, 4))
    >>> mrna_predict(phi, np.array([[1.0, 5.0, 10.0, 20.0]]), out)
    >>> bool(np.all(np.isfinite(out)))
    True
    """
    for i in numba.prange(phi.shape[0]):
        _mrna_row(phi[i], times[i], out[i])


@numba.njit(parallel=True, fastmath=_FM, cache=True)
def mrna_simulate(phi, times, seed, out):
    """Noisy log-expression into ``out`` (n, T); ``sigma = exp(phi[:, 5])``.

    Parameters
    ----------
    phi : ndarray of shape (n, 6)
        Parameters in :class:`~sknlme.models.MRNATransfection` order.
    times : ndarray of shape (n, T)
    seed : numpy.uint64
        Row ``i`` draws from individual ``i``'s stream of this seed (:func:`draw_seed`).
    out : ndarray of shape (n, T)
        Written in place.

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.models import MRNATransfection
    >>> from sknlme.simulate import draw_seed, mrna_simulate
    >>> phi = MRNATransfection().prior_mean[None, :]
    >>> out = np.empty((1, 4))
    >>> mrna_simulate(phi, np.array([[1.0, 5.0, 10.0, 20.0]]),
    ...               draw_seed(np.random.RandomState(0)), out)
    >>> bool(np.all(np.isfinite(out)))
    True
    """
    for i in numba.prange(phi.shape[0]):
        _mrna_row(phi[i], times[i], out[i])
        _add_noise_row(out[i], ADDITIVE, np.exp(phi[i, 5]), 0.0, stream(seed, i))


@numba.njit(parallel=True, fastmath=_FM, cache=True)
def mrna_loglik(phi, times, values, mask, bounds):
    """Log-likelihood (n, K) of the simple mRNA model for ``phi`` (n, K, 6)."""
    n, K, T = phi.shape[0], phi.shape[1], times.shape[1]
    out = np.empty((n, K))
    n_chunks = bounds.shape[0] - 1
    buf = np.empty((n_chunks, T))
    for c in numba.prange(n_chunks):
        for i in range(bounds[c], bounds[c + 1]):
            for k in range(K):
                _mrna_row(phi[i, k], times[i], buf[c])
                out[i, k] = _loglik_row(
                    buf[c], values[i], mask[i], ADDITIVE, np.exp(phi[i, k, 5]), 0.0
                )
    return out


def chunk_bounds(n):
    """Chunk boundaries for the log-likelihood kernels (a few chunks per thread)."""
    n_chunks = max(1, min(n, 8 * numba.get_num_threads()))
    return np.linspace(0, n, n_chunks + 1).astype(np.int64)
