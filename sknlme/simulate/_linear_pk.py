"""Compiled closed forms of linear one-, two- and three-compartment PK models.

The central concentration after a unit amount put into the central
compartment of a mammillary model is a sum of exponentials,
``sum_i c_i exp(-lambda_i s)``, where ``lambda_i`` are the eigenvalues of the
rate matrix (``k10 = CL/V1``, ``k12 = Q/V1``, ``k21 = Q/V2``, ``k13 = Q3/V1``,
``k31 = Q3/V3``) and ``c_i = prod_p (k_p1 - lambda_i) / prod_{j != i}
(lambda_j - lambda_i) / V1`` (``p`` over the peripheral compartments). Every
dose adds its response (superposition):

- bolus into the central compartment: ``D c_i e^{-λ s}``;
- zero-order infusion of ``D`` over ``dur``:
  ``D/dur c_i (1 - e^{-λ min(s, dur)}) e^{-λ max(s - dur, 0)} / λ``;
- first-order absorption from the depot (amount ``F D``, lag ``tlag``):
  ``F D ka c_i B(λ, ka, s - tlag)`` with the Bateman function ``B``.

A steady-state dose with interval ``tau`` adds the geometric series of its
past repetitions in closed form: ``e^{-λ s}`` becomes ``e^{-λ s} / (1 -
e^{-λ tau})`` and the Bateman function the divided difference of
``r -> e^{-r s} / (1 - e^{-r tau})`` between ``λ`` and ``ka``.

Conventions: an observation at the time of an event is taken before it
(a dose counts for ``s > 0``); a reset event, or an ``SS=1`` dose, drops the
events listed before it from every later observation. Events are in time
order. The structural parameters of a row are, on the natural scale,
``CL, V1, Q, V2, Q3, V3, ka, tlag, F`` (unused ones ignored).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ._closed_form import _FM, _add_noise_row, _error_scales, _sd, bateman, observed_length
from ._random import stream

N_PK = 9  # CL, V1, Q, V2, Q3, V3, ka, tlag, F
# Measured on 2 shared cores, broad training designs (mean 15 samples, 10 doses):
# simulation 1.6e5 individuals/s (1-2 compartments IV), 8e4 (3 compartments oral);
# log-likelihood 3e5 (1 cpt), 1.7e5 (2 cpt), 1.3e5 (3 cpt oral) draws/s.
# Cost is O(samples x doses) per individual (see _pk_row).
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


@numba.njit(fastmath=_FM)
def _cubic_newton(lam, a2, a1, a0):
    for _ in range(3):
        p = ((lam - a2) * lam + a1) * lam - a0
        dp = (3.0 * lam - 2.0 * a2) * lam + a1
        if dp == 0.0:
            break
        lam -= p / dp
    return lam


@numba.njit(fastmath=_FM)
def disposition(p, ncomp, lam, coef):
    """Eigenvalues ``lam`` and concentration coefficients ``coef`` (written in place)."""
    v1 = p[1]
    k10 = p[0] / v1
    if ncomp == 1:
        lam[0], coef[0] = k10, 1.0 / v1
        return
    k12, k21 = p[2] / v1, p[2] / p[3]
    if ncomp == 2:
        disc = np.sqrt((k10 + k12 - k21) ** 2 + 4.0 * k12 * k21)  # no cancellation
        l1 = 0.5 * (k10 + k12 + k21 + disc)
        l2 = k10 * k21 / l1  # product of the roots: no cancellation for the small one
        lam[0], lam[1] = l1, l2
        coef[0] = (l1 - k21) / disc / v1
        coef[1] = (k21 - l2) / disc / v1
        return
    k13, k31 = p[4] / v1, p[4] / p[5]
    a2 = k10 + k12 + k13 + k21 + k31
    a1 = k10 * k21 + k10 * k31 + k12 * k31 + k13 * k21 + k21 * k31
    a0 = k10 * k21 * k31
    q = (a2 * a2 - 3.0 * a1) / 9.0
    r = (-2.0 * a2**3 + 9.0 * a2 * a1 - 27.0 * a0) / 54.0
    sq = np.sqrt(max(q, 0.0))
    x = r / (sq**3) if sq > 0.0 else 0.0
    theta = np.arccos(min(1.0, max(-1.0, x)))
    for k in range(2):  # the two large roots, polished by Newton steps
        lk = a2 / 3.0 - 2.0 * sq * np.cos((theta + 2.0 * np.pi * (k + 1)) / 3.0)
        lam[k] = _cubic_newton(lk, a2, a1, a0)
    lam[2] = _cubic_newton(a0 / (lam[0] * lam[1]), a2, a1, a0)
    for i in range(3):
        num = (k21 - lam[i]) * (k31 - lam[i])
        den = 1.0
        for j in range(3):
            if j != i:
                den *= lam[j] - lam[i]
        coef[i] = num / den / v1


@numba.njit(fastmath=_FM)
def _geo(r, tau):
    """``1 / (1 - exp(-r tau))``."""
    return -1.0 / np.expm1(-r * tau)


@numba.njit(fastmath=_FM)
def _ss_bateman(lam, ka, s, tau):
    """``sum_m B(lam, ka, s + m tau)`` over ``m >= 0``."""
    f_l = np.exp(-lam * s) * _geo(lam, tau)
    f_k = np.exp(-ka * s) * _geo(ka, tau)
    if abs(ka - lam) * (s + tau) >= 1e-5:  # divided difference: cancellation < 3e-11
        return (f_l - f_k) / (ka - lam)
    m = 0.5 * (lam + ka)  # -f'(m): the midpoint error is below (1e-5)^2 / 24
    return np.exp(-m * s) * _geo(m, tau) * (s + tau * np.exp(-m * tau) * _geo(m, tau))


@numba.njit(fastmath=_FM)
def _unit(route, lam, ka, s, dur, tau):
    """Response ``sum`` factor of one exponential to one unit dose (see the module)."""
    if route == 1:  # depot
        if tau > 0.0:
            return ka * _ss_bateman(lam, ka, s, tau)
        return ka * bateman(lam, ka, s)
    if dur > 0.0:  # zero-order infusion of a unit amount
        om = -np.expm1(-lam * dur) / lam  # (1 - e^{-lam dur}) / lam
        if s <= dur:
            val = -np.expm1(-lam * s) / lam
        else:
            val = np.exp(-lam * (s - dur)) * om
        if tau > 0.0:
            val += om * np.exp(-lam * (s + tau - dur)) * _geo(lam, tau)
        return val / dur
    if tau > 0.0:
        return np.exp(-lam * s) * _geo(lam, tau)
    return np.exp(-lam * s)


@numba.njit(fastmath=_FM)
def _pk_row(p, ncomp, times, dt, amt, dur, route, ss, ii, reset, lam, coef, out, work):
    """Concentrations of one row at ``times`` into ``out``; ``work`` (D, 8) is scratch.

    Superposition costs an exponential per sample, dose and rate; here a dose's
    ``exp(-lam u)`` (and ``exp(-ka u)``) are kept in ``work`` and advanced to the
    next sample by one multiplication with ``exp(-lam h)``, ``h`` the time step
    common to all doses, so a row costs ``O(samples x (rates + doses))``
    exponentials-or-products instead of ``O(samples x doses x rates)``
    exponentials. Kept only where the response is a sum of such terms (bolus;
    infusion after its end, ``u = s - dur``; first-order absorption with rates
    apart, ``|ka - lam| u >= 0.5``); steady-state doses, samples inside an
    infusion and near-equal rates take the closed forms directly, as does a
    dose whose kept ``u`` plus ``h`` is not its new ``u`` (it was skipped, or
    times go back), and rows of at most two doses. The products drift by an
    ulp per sample (30 samples: < 1e-14 relative). Measured per row (100,000
    rows, 2 cores): 20 doses and 30 samples 6.1 -> 3.6 us (two compartments,
    boluses), 4.9 -> 2.6 us (one, oral); 5 doses and 15 samples 1.0 -> 0.7 us.
    """
    disposition(p, ncomp, lam, coef)
    ka, tlag, bio = p[6], p[7], p[8]
    D = dt.shape[0]
    # with one or two doses the bookkeeping costs more than the exponentials it saves
    # (one oral dose, 11 samples: 230 ns per row direct, 280 ns kept)
    direct = D <= 2
    for d in range(D):
        work[d, 7] = -1.0  # no kept terms
    prev = np.nan
    e0 = e1 = e2 = ek = 0.0
    for j in range(times.shape[0]):
        t = times[j]
        h = t - prev  # NaN at the first sample: nothing is advanced
        moved = h >= 0.0
        if moved:
            e0 = np.exp(-lam[0] * h)
            e1 = np.exp(-lam[1] * h) if ncomp > 1 else 0.0
            e2 = np.exp(-lam[2] * h) if ncomp > 2 else 0.0
            ek = np.exp(-ka * h)
        prev = t
        start = 0
        for d in range(D):
            if (reset[d] or ss[d] == 1) and dt[d] < t:
                start = d
        c = 0.0
        for d in range(start, D):
            if amt[d] == 0.0 or dt[d] >= t:
                continue
            s = t - dt[d]
            a = amt[d]
            if route[d] == 1:
                s -= tlag
                a *= bio
            tau = ii[d] if ss[d] != 0 else 0.0
            if tau > 0.0:
                while s <= 0.0:  # a lagged steady state: the previous repetitions
                    s += tau
            elif s <= 0.0:
                continue
            infusion = route[d] == 0 and dur[d] > 0.0
            if direct or tau > 0.0 or (infusion and s <= dur[d]):
                for i in range(ncomp):
                    c += a * coef[i] * _unit(route[d], lam[i], ka, s, dur[d], tau)
                work[d, 7] = -1.0
                continue
            u = s - dur[d] if infusion else s
            if moved and work[d, 7] >= 0.0 and abs(work[d, 7] + h - u) <= 1e-13 * u:
                work[d, 0] *= e0
                work[d, 1] *= e1
                work[d, 2] *= e2
                work[d, 3] *= ek
            else:
                for i in range(ncomp):
                    work[d, i] = np.exp(-lam[i] * u)
                    if infusion:  # (1 - e^{-lam dur}) / (lam dur)
                        work[d, 4 + i] = -np.expm1(-lam[i] * dur[d]) / (lam[i] * dur[d])
                work[d, 3] = np.exp(-ka * u)
            work[d, 7] = u
            for i in range(ncomp):
                if route[d] == 1:
                    if abs(ka - lam[i]) * u >= 0.5:  # as bateman's plain difference
                        v = ka * (work[d, i] - work[d, 3]) / (ka - lam[i])
                    else:
                        v = ka * bateman(lam[i], ka, u)
                elif infusion:
                    v = work[d, i] * work[d, 4 + i]
                else:
                    v = work[d, i]
                c += a * coef[i] * v
        out[j] = c


@numba.njit(parallel=True, fastmath=_FM, cache=True)
def linear_pk_predict(pk, ncomp, times, dt, amt, dur, route, ss, ii, reset, out):
    """Central concentrations of a linear compartmental model into ``out`` (n, T).

    Parameters
    ----------
    pk : ndarray of shape (n, 9)
        ``CL, V1, Q, V2, Q3, V3, ka, tlag, F`` per row (natural scale; unused ignored).
    ncomp : int
        Number of compartments (1, 2 or 3), the depot not counted.
    times : ndarray of shape (n, T)
    dt, amt, dur, ii : ndarray of shape (n, D)
        Dose times, amounts (0 on padding), infusion durations (0: bolus) and
        steady-state intervals.
    route : ndarray of int of shape (n, D)
        0 central, 1 depot.
    ss : ndarray of int of shape (n, D)
        Steady-state flags (0, 1, 2; see the module).
    reset : ndarray of bool of shape (n, D)
    out : ndarray of shape (n, T)
        Written in place.

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.simulate import linear_pk_predict
    >>> pk = np.array([[2.0, 10.0, 0, 0, 0, 0, 0, 0, 1.0]])    # CL 2 L/h, V 10 L
    >>> z = np.zeros((1, 1))
    >>> out = np.empty((1, 1))
    >>> linear_pk_predict(pk, 1, np.array([[1.0]]), z, np.full((1, 1), 100.0), z,
    ...                   z.astype(np.int64), z.astype(np.int64), z, z.astype(bool), out)
    >>> round(float(out[0, 0]), 6)  # 100/10 exp(-0.2)
    8.187308
    """
    lam = np.empty((pk.shape[0], 3))
    coef = np.empty((pk.shape[0], 3))
    for i in numba.prange(pk.shape[0]):
        _pk_row(
            pk[i], ncomp, times[i], dt[i], amt[i], dur[i], route[i], ss[i], ii[i], reset[i],
            lam[i], coef[i], out[i], np.empty((dt.shape[1], 8)),
        )  # fmt: skip


@numba.njit(parallel=True, fastmath=_FM, cache=True)
def linear_pk_simulate(pk, err, ncomp, times, dt, amt, dur, route, ss, ii, reset, code, seed, out):
    """Noisy concentrations into ``out`` (n, T): :func:`linear_pk_predict` plus residual error.

    ``err`` (n, n_error_params) holds the log error parameters, ``code`` the
    error model and ``seed`` the per-individual streams (:func:`draw_seed`).

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.simulate import draw_seed, linear_pk_simulate
    >>> pk = np.array([[2.0, 10.0, 0, 0, 0, 0, 0, 0, 1.0]])
    >>> z = np.zeros((1, 1))
    >>> zi = z.astype(np.int64)
    >>> out = np.empty((1, 1))
    >>> linear_pk_simulate(pk, np.log([[0.1]]), 1, np.array([[1.0]]), z, np.full((1, 1), 100.0),
    ...                    z, zi, zi, z, z.astype(bool), 0, draw_seed(np.random.RandomState(0)),
    ...                    out)
    >>> bool(abs(out[0, 0] - 8.187) < 1.0)
    True
    """
    lam = np.empty((pk.shape[0], 3))
    coef = np.empty((pk.shape[0], 3))
    for i in numba.prange(pk.shape[0]):
        _pk_row(
            pk[i], ncomp, times[i], dt[i], amt[i], dur[i], route[i], ss[i], ii[i], reset[i],
            lam[i], coef[i], out[i], np.empty((dt.shape[1], 8)),
        )  # fmt: skip
        a, b = _error_scales(code, err[i])
        _add_noise_row(out[i], code, a, b, stream(seed, i))


@numba.njit(fastmath=_FM)
def _log_norm_cdf(z):
    if z > -30.0:
        return np.log(0.5 * math.erfc(-z / math.sqrt(2.0)))
    return -0.5 * z * z - np.log(-z) - _HALF_LOG_2PI  # Mills ratio, rel. error < 1/z² ~ 1e-3


@numba.njit(fastmath=_FM)
def _m3_loglik_row(pred, y, mask, cens, code, a, b):
    """Gaussian log-density at observed values, ``log Phi((LLOQ - f)/sd)`` at censored ones."""
    total = 0.0
    for j in range(pred.shape[0]):
        if not mask[j]:
            continue
        sd = _sd(code, pred[j], a, b)
        r = y[j] - pred[j]
        if sd > 0.0:
            z = r / sd
            if cens[j]:
                total += _log_norm_cdf(z)
            else:
                total += -0.5 * z * z - np.log(sd) - _HALF_LOG_2PI
        elif (cens[j] and r < 0.0) or (not cens[j] and r != 0.0):
            total += -np.inf
    return total


@numba.njit(parallel=True, fastmath=_FM, cache=True)
def linear_pk_loglik(
    pk, err, ncomp, times, dt, amt, dur, route, ss, ii, reset, values, mask, cens, code, bounds
):
    """Log-likelihood (n, K) for ``pk`` (n, K, 9) and ``err`` (n, K, m), with M3 censoring.

    ``values``, ``mask`` and ``cens`` are (n, T): observations (the limit of
    quantification where ``cens``), observed flags and censoring flags;
    ``bounds`` split the individuals into chunks (``chunk_bounds``).

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.simulate import linear_pk_loglik
    >>> pk = np.array([[[2.0, 10.0, 0, 0, 0, 0, 0, 0, 1.0]]])  # one individual, one draw
    >>> z = np.zeros((1, 1))
    >>> zi, zb = z.astype(np.int64), z.astype(bool)
    >>> y = np.array([[8.187308, 0.5]])  # at t = 1 h; below an LLOQ of 0.5 at t = 48 h
    >>> ll = linear_pk_loglik(pk, np.zeros((1, 1, 1)), 1, np.array([[1.0, 48.0]]), z,
    ...                       np.full((1, 1), 100.0), z, zi, zi, z, zb, y,
    ...                       np.ones((1, 2), bool), np.array([[False, True]]), 0,
    ...                       np.array([0, 1]))
    >>> round(float(ll[0, 0]), 4)  # log N(0; 0, 1) + log P(C(48) + eps < 0.5) ~ log 0.69
    -1.2882
    """
    n, K, T = pk.shape[0], pk.shape[1], times.shape[1]
    out = np.empty((n, K))
    n_chunks = bounds.shape[0] - 1
    buf = np.empty((n_chunks, T))
    lam = np.empty((n_chunks, 3))
    coef = np.empty((n_chunks, 3))
    work = np.empty((n_chunks, dt.shape[1], 8))
    for c in numba.prange(n_chunks):
        for i in range(bounds[c], bounds[c + 1]):
            m = observed_length(mask[i])
            for k in range(K):
                _pk_row(
                    pk[i, k], ncomp, times[i, :m], dt[i], amt[i], dur[i], route[i], ss[i],
                    ii[i], reset[i], lam[c], coef[c], buf[c, :m], work[c],
                )  # fmt: skip
                a, b = _error_scales(code, err[i, k])
                out[i, k] = _m3_loglik_row(
                    buf[c, :m], values[i, :m], mask[i, :m], cens[i, :m], code, a, b
                )
    return out
