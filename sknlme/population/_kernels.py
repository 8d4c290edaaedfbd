"""Numba kernels of the population objective (the package's hot path).

The draws come transposed, ``samples[i, j, k]`` of shape (n, d, K), so that
every loop over the draws ``k`` runs on contiguous memory and vectorises (in
the (n, K, d) layout those loads are strided by ``d``: measured 1.8x slower).
For individual ``i`` with draws ``phi_ik`` (float32 or float64, read as they
are and promoted to float64 one value at a time), mean ``m_i`` and
``Psi = L L^T`` (``Linv = L^{-1}``), the kernels form ``z_ik = Linv (phi_ik - m_i)``
and ``a_ik = c_ik - |z_ik|^2 / 2``, then with a two-pass log-sum-exp over
``k`` (maximum, then sum of ``exp(a_ik - max)``) the softmax weights
``w_ik``. They return per individual ``lse_i = logsumexp_k a_ik`` and
``zbar_i = sum_k w_ik z_ik``, and per chunk of individuals
``S = sum_i sum_k w_ik z_ik z_ik^T`` (lower triangle; diagonal only when
``Psi`` is diagonal). The caller adds the Gaussian normalising constant and
applies the chain rule on the small ``d x d`` level.

Individuals are split into contiguous chunks run in parallel (``prange``);
each chunk writes its own slice of ``S`` and distinct rows of ``lse`` and
``zbar``, so no two threads write the same memory. Fast-math flags allow
reassociation and contraction but not ``nnan``/``ninf``, so ``-inf``
offsets (zero likelihood) stay exact: an individual whose terms are all
``-inf`` gets ``lse_i = -inf`` and ``zbar_i = 0``.
"""

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

_FASTMATH = {"nsz", "arcp", "contract", "reassoc"}
_OPTS = {"parallel": True, "nogil": True, "cache": True, "fastmath": _FASTMATH}


# exp(x) for x <= 0 as 2^n exp(r), n = round(x / ln 2), |r| <= ln(2) / 2: exp(r) by its
# Taylor polynomial of degree 12 (remainder < 0.347^13 / 13! = 1.7e-16 relative) and 2^n
# built in the exponent bits. Arithmetic, bit casts and selects only, so the loop
# vectorises (numba has no vector exp without SVML): about 3x faster than libm's exp.
# Only "contract" (FMA) here: reassociation would fold (t + SHIFT) - SHIFT.
_LOG2E = 1.4426950408889634
_LN2_HI = 0.6931471803691238  # ln 2 split in two parts, the first exact in 32 bits
_LN2_LO = 1.9082149292705877e-10
_SHIFT = 6755399441055744.0  # 1.5 * 2^52: t + SHIFT holds round(t) in its low bits
_SHIFT_BITS = 0x4338000000000000  # bit pattern of _SHIFT
_UNDERFLOW = -708.0  # below this exp(x) < 3.3e-308: the weight is set to 0
_C0, _C1, _C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12 = (
    1.0 / np.prod(np.arange(1.0, m + 1)) for m in range(13)
)


@intrinsic
def _as_int64(typingctx, x):
    """Bit pattern of a float64 as int64."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _as_float64(typingctx, x):
    """float64 with the given int64 bit pattern."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@njit(nogil=True, cache=True, fastmath={"contract"})
def _exp_shifted(a, amax, w):
    """``w[k] = exp(a[k] - amax)`` for ``a - amax <= 0`` (0 below ``_UNDERFLOW``)."""
    for k in range(a.shape[0]):
        y = a[k] - amax
        x = max(y, _UNDERFLOW)
        t = x * _LOG2E + _SHIFT
        nf = t - _SHIFT
        r = (x - nf * _LN2_HI) - nf * _LN2_LO
        p = _C12 * r + _C11
        p = (((p * r + _C10) * r + _C9) * r + _C8) * r + _C7
        p = ((((p * r + _C6) * r + _C5) * r + _C4) * r + _C3) * r + _C2
        p = (p * r + _C1) * r + _C0
        scale = _as_float64((_as_int64(t) - _SHIFT_BITS + 1023) << 52)  # 2^n, -1022 <= n <= 0
        w[k] = p * scale if y >= _UNDERFLOW else 0.0


@njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _weights(a, w):
    """Fill ``w`` with ``exp(a - max a)``; return ``(max a, sum w)``."""
    amax = -np.inf
    for k in range(a.shape[0]):
        amax = max(amax, a[k])
    if amax == -np.inf:
        return amax, 0.0
    _exp_shifted(a, amax, w)
    s = 0.0
    for k in range(a.shape[0]):
        s += w[k]
    return amax, s


@njit(**_OPTS)
def moments_diag(samples, offsets, means, inv_sd, n_chunks):
    """Moments for diagonal ``Psi``; ``inv_sd`` is ``1 / sqrt(diag Psi)``; samples (n, d, K).

    Returns ``lse (n,)``, ``zbar (n, d)`` and ``S (n_chunks, d, d)`` (diagonal filled).
    """
    n, d, K = samples.shape
    lse = np.empty(n)
    zbar = np.empty((n, d))
    S = np.zeros((n_chunks, d, d))
    for c in prange(n_chunks):
        z = np.empty((d, K))
        a = np.empty(K)
        w = np.empty(K)
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            for k in range(K):
                a[k] = np.float64(offsets[i, k])
            for j in range(d):
                mj = means[i, j]
                sj = inv_sd[j]
                for k in range(K):
                    zjk = (np.float64(samples[i, j, k]) - mj) * sj
                    z[j, k] = zjk
                    a[k] -= 0.5 * zjk * zjk
            amax, s = _weights(a, w)
            if s == 0.0:
                lse[i] = -np.inf
                zbar[i, :] = 0.0
                continue
            lse[i] = amax + np.log(s)
            for j in range(d):
                t1 = 0.0
                t2 = 0.0
                for k in range(K):
                    wz = w[k] * z[j, k]
                    t1 += wz
                    t2 += wz * z[j, k]
                zbar[i, j] = t1 / s
                S[c, j, j] += t2 / s
    return lse, zbar, S


@njit(**_OPTS)
def moments_full(samples, offsets, means, linv, pattern, n_chunks):
    """Moments for a general ``Psi``; ``linv`` is the lower-triangular ``L^{-1}``; (n, d, K).

    ``pattern[j, m]`` (int8) is 1 where ``S[j, m]`` is needed (inside a covariance
    block); zero entries of ``linv`` are skipped. Returns ``lse (n,)``, ``zbar (n, d)``
    and ``S (n_chunks, d, d)`` (lower triangle, entries of ``pattern`` filled).
    """
    n, d, K = samples.shape
    lse = np.empty(n)
    zbar = np.empty((n, d))
    S = np.zeros((n_chunks, d, d))
    for c in prange(n_chunks):
        r = np.empty((d, K))
        z = np.empty((d, K))
        wz = np.empty((d, K))
        a = np.empty(K)
        w = np.empty(K)
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            for j in range(d):
                mj = means[i, j]
                for k in range(K):
                    r[j, k] = np.float64(samples[i, j, k]) - mj
            for k in range(K):
                a[k] = np.float64(offsets[i, k])
            for j in range(d):
                z[j, :] = 0.0
                for m in range(j + 1):
                    lj = linv[j, m]
                    if lj == 0.0:  # block-diagonal Psi: skip the zeros between blocks
                        continue
                    for k in range(K):
                        z[j, k] += lj * r[m, k]
                for k in range(K):
                    a[k] -= 0.5 * z[j, k] * z[j, k]
            amax, s = _weights(a, w)
            if s == 0.0:
                lse[i] = -np.inf
                zbar[i, :] = 0.0
                continue
            lse[i] = amax + np.log(s)
            for j in range(d):
                t1 = 0.0
                for k in range(K):
                    v = w[k] * z[j, k]
                    wz[j, k] = v
                    t1 += v
                zbar[i, j] = t1 / s
                for m in range(j + 1):
                    if pattern[j, m] == 0:
                        continue
                    t2 = 0.0
                    for k in range(K):
                        t2 += wz[j, k] * z[m, k]
                    S[c, j, m] += t2 / s
    return lse, zbar, S


@njit(nogil=True, cache=True)
def means(beta, C, B):
    """``m_i = beta + B^T c_i`` as (n, d): ``C`` (n, p), ``B`` (p, d); zero rows of B skipped."""
    n, p = C.shape
    out = np.empty((n, beta.shape[0]))
    out[:] = beta
    for c in range(p):
        for j in range(beta.shape[0]):
            b = B[c, j]
            if b != 0.0:
                for i in range(n):
                    out[i, j] += C[i, c] * b
    return out


@njit(nogil=True, cache=True)
def cross(C, Z):
    """``C^T Z`` as (p, d) for ``C`` (n, p) and ``Z`` (n, d)."""
    n, p = C.shape
    d = Z.shape[1]
    out = np.zeros((p, d))
    for i in range(n):
        for c in range(p):
            ci = C[i, c]
            for j in range(d):
                out[c, j] += ci * Z[i, j]
    return out


@njit(**_OPTS)
def log_terms(samples, offsets, means, linv):
    """``a_ik = c_ik - |Linv (phi_ik - m_i)|^2 / 2`` (n, K) float64; samples (n, d, K)."""
    n, d, K = samples.shape
    out = np.empty((n, K))
    for i in prange(n):
        r = np.empty((d, K))
        z = np.empty(K)
        for j in range(d):
            for k in range(K):
                r[j, k] = np.float64(samples[i, j, k]) - means[i, j]
        for k in range(K):
            out[i, k] = np.float64(offsets[i, k])
        for j in range(d):
            z[:] = 0.0
            for m in range(j + 1):
                for k in range(K):
                    z[k] += linv[j, m] * r[m, k]
            for k in range(K):
                out[i, k] -= 0.5 * z[k] * z[k]
    return out


@njit(**_OPTS)
def neg_gauss_logpdf(samples, mean, linv, log_norm):
    """``-log N(phi_ik; mean, Psi)`` (n, K) float64, samples (n, K, d) as given by the user.

    ``log_norm = log|L| + d log(2 pi) / 2``.
    """
    n, K, d = samples.shape
    out = np.empty((n, K))
    for i in prange(n):
        r = np.empty(d)
        for k in range(K):
            for j in range(d):
                r[j] = np.float64(samples[i, k, j]) - mean[j]
            q = 0.0
            for j in range(d):
                z = 0.0
                for m in range(j + 1):
                    z += linv[j, m] * r[m]
                q += z * z
            out[i, k] = 0.5 * q + log_norm
    return out
