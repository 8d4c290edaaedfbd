"""A compiled stiff ODE integrator: Rodas4 with step-size control and dense output.

:func:`make_rodas_solver` builds, for one right-hand side, a numba kernel that
integrates many individuals in parallel (``prange`` over individuals, no
Python loop) and evaluates a scalar observable at each individual's
observation times. The method is Hairer & Wanner's RODAS (order 4 with an
embedded order-3 solution, L-stable and stiffly accurate, "Solving Ordinary
Differential Equations II", 2nd ed., 1996, Sec. VI.7, coefficient set
``METH=1`` of their ``rodas.f``) with its order-3 continuous extension, an
analytic Jacobian and a small dense LU with partial pivoting. Work arrays
are allocated once per chunk of individuals, not per step.

Systems are autonomous, ``y' = f(y, p)``, and start at an individual time
``t_start`` (e.g. the switch time of a model that is at rest before it):
observation times ``t <= t_start`` get the observable of the initial state.
"""

from __future__ import annotations

import numba as nb
import numpy as np

#: Status codes of the kernel, per individual.
STATUS_OK = 0
STATUS_MAX_STEPS = 1  #: the step budget ran out before the last time point
STATUS_STEP_TOO_SMALL = 2  #: the step size collapsed (h < 1e-14 * max(1, |t|))
STATUS_NONFINITE = 3  #: the state or the observable became NaN/inf
STATUS_MESSAGES = {
    STATUS_MAX_STEPS: "step budget exhausted",
    STATUS_STEP_TOO_SMALL: "step size collapsed",
    STATUS_NONFINITE: "non-finite state",
}

# RODAS (Hairer & Wanner, rodas.f, METH=1): W = I/(h GAMMA) - J, stage arguments
# y + sum_j Aij k_j (stage 6 = stage 5 + k5), right-hand sides f + sum_j Cij/h k_j,
# dense-output coefficients D2j, D3j.
GAMMA = 0.25
A21 = 1.544
A31, A32 = 0.9466785280815826, 0.2557011698983284
A41, A42, A43 = 3.314825187068521, 2.896124015972201, 0.9986419139977817
A51, A52, A53, A54 = 1.221224509226641, 6.019134481288629, 12.53708332932087, -0.6878860361058950
C21 = -5.6688
C31, C32 = -2.430093356833875, -0.2063599157091915
C41, C42, C43 = -0.1073529058151375, -9.594562251023355, -20.47028614809616
C51, C52, C53, C54 = 7.496443313967647, -10.24680431464352, -33.99990352819905, 11.70890893206160
C61, C62, C63 = 8.083246795921522, -7.981132988064893, -31.52159432874371
C64, C65 = 16.31930543123136, -6.058818238834054
D21, D22, D23 = 10.12623508344586, -7.487995877610167, -34.80091861555747
D24, D25 = -7.992771707568823, 1.025137723295662
D31, D32, D33 = -0.6762803392801253, 6.087714651680015, 16.43084320892478
D34, D35 = 24.76722511418386, -6.594389125716872


@nb.njit(cache=True)
def lu_factor(a, piv):
    """In-place LU factorisation with partial pivoting; False if singular.

    The diagonal of ``U`` is stored inverted, so that :func:`lu_solve`
    multiplies instead of dividing.
    """
    n = a.shape[0]
    for k in range(n):
        p = k
        big = abs(a[k, k])
        for i in range(k + 1, n):
            if abs(a[i, k]) > big:
                big = abs(a[i, k])
                p = i
        piv[k] = p
        if not (big > 0.0 and big < np.inf):  # zero, infinite or NaN pivot
            return False
        if p != k:
            for j in range(n):
                tmp = a[k, j]
                a[k, j] = a[p, j]
                a[p, j] = tmp
        inv = 1.0 / a[k, k]
        a[k, k] = inv
        for i in range(k + 1, n):
            f = a[i, k] * inv
            a[i, k] = f
            if f != 0.0:
                for j in range(k + 1, n):
                    a[i, j] -= f * a[k, j]
    return True


@nb.njit(cache=True)
def lu_solve(a, piv, b):
    """Solve ``A x = b`` in place with the factors of :func:`lu_factor`."""
    n = a.shape[0]
    for k in range(n):
        p = piv[k]
        if p != k:
            tmp = b[k]
            b[k] = b[p]
            b[p] = tmp
    for i in range(1, n):
        s = b[i]
        for j in range(i):
            s -= a[i, j] * b[j]
        b[i] = s
    for i in range(n - 1, -1, -1):
        s = b[i]
        for j in range(i + 1, n):
            s -= a[i, j] * b[j]
        b[i] = s * a[i, i]


def make_rodas_solver(rhs, jac, observe, n_states):
    """Build a parallel Rodas4 kernel for one autonomous ODE system.

    Parameters
    ----------
    rhs : numba function ``rhs(y, p, out)``
        Writes ``f(y, p)`` into ``out`` (shape ``(n_states,)``).
    jac : numba function ``jac(y, p, out)``
        Writes the Jacobian ``df/dy`` into ``out`` (shape ``(n_states, n_states)``).
    observe : numba function ``observe(y, p) -> float``
        The observable of a state.
    n_states : int

    Returns
    -------
    solve : numba function
        ``solve(params, y0, t_start, times, rtol, atol, max_steps, out, status, n_steps)``
        with ``params`` (n, n_p), ``y0`` and ``atol`` (n, n_states), ``t_start``
        (n,), ``times`` (n, T) non-decreasing per row; it fills ``out`` (n, T)
        with the observable (NaN after a failure), ``status`` (n,) with the
        ``STATUS_*`` codes and ``n_steps`` (n,) with the accepted steps.
        The compiled kernel is built on first call (a few seconds) and not
        cached on disk, because numba cannot cache closures.

    Examples
    --------
    >>> import numba as nb, numpy as np
    >>> @nb.njit
    ... def f(y, p, out):
    ...     out[0] = -p[0] * y[0]
    >>> @nb.njit
    ... def J(y, p, out):
    ...     out[0, 0] = -p[0]
    >>> @nb.njit
    ... def obs(y, p):
    ...     return y[0]
    >>> solve = make_rodas_solver(f, J, obs, 1)
    >>> times = np.array([[0.0, 1.0, 2.0]])
    >>> out, status = np.empty((1, 3)), np.empty(1, np.int64)
    >>> solve(np.array([[1.0]]), np.ones((1, 1)), np.zeros(1), times, 1e-8,
    ...       np.full((1, 1), 1e-12), 10_000, out, status, np.empty(1, np.int64))
    >>> bool(np.allclose(out, np.exp(-times), rtol=1e-6)), int(status[0])
    (True, 0)
    """
    S = int(n_states)

    @nb.njit(fastmath=False)
    def _wnorm(err, y, ynew, atol, rtol):
        acc = 0.0
        for k in range(S):
            sc = atol[k] + rtol * max(abs(y[k]), abs(ynew[k]))
            acc += (err[k] / sc) ** 2
        return np.sqrt(acc / S)

    @nb.njit
    def _one(p, y0, t0, times, rtol, atol, max_steps, out, ws, jw, piv):
        y, ynew, f, arg = ws[0], ws[1], ws[2], ws[3]
        k1, k2, k3, k4, k5, k6 = ws[4], ws[5], ws[6], ws[7], ws[8], ws[9]
        T = times.shape[0]
        for k in range(S):
            y[k] = y0[k]
        j = 0
        obs0 = observe(y, p)
        while j < T and times[j] <= t0:
            out[j] = obs0
            j += 1
        if j == T:
            return STATUS_OK, 0
        t = t0
        t_end = times[T - 1]
        # initial step: 1 % of the local scale of y over that of f (Hairer's heuristic)
        rhs(y, p, f)
        d0 = 0.0
        d1 = 0.0
        for k in range(S):
            sc = atol[k] + rtol * abs(y[k])
            d0 += (y[k] / sc) ** 2
            d1 += (f[k] / sc) ** 2
        d0 = np.sqrt(d0 / S)
        d1 = np.sqrt(d1 / S)
        h = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
        h = min(h, t_end - t)
        n_acc = 0
        n_try = 0
        rejected = False
        while True:
            if n_try >= max_steps:
                status = STATUS_MAX_STEPS
                break
            n_try += 1
            last = h >= t_end - t
            if last:
                h = t_end - t
            # W = I / (h gamma) - J, factorised once per step
            jac(y, p, jw)
            fac = 1.0 / (h * GAMMA)
            for a in range(S):
                for b in range(S):
                    jw[a, b] = -jw[a, b]
                jw[a, a] += fac
            ok = lu_factor(jw, piv)
            if ok:
                # the six stages (Hairer & Wanner's notation; k_i in units of y)
                ih = 1.0 / h
                rhs(y, p, f)
                for k in range(S):
                    k1[k] = f[k]
                lu_solve(jw, piv, k1)
                for k in range(S):
                    arg[k] = y[k] + A21 * k1[k]
                rhs(arg, p, f)
                for k in range(S):
                    k2[k] = f[k] + (C21 * ih) * k1[k]
                lu_solve(jw, piv, k2)
                for k in range(S):
                    arg[k] = y[k] + A31 * k1[k] + A32 * k2[k]
                rhs(arg, p, f)
                for k in range(S):
                    k3[k] = f[k] + ih * (C31 * k1[k] + C32 * k2[k])
                lu_solve(jw, piv, k3)
                for k in range(S):
                    arg[k] = y[k] + A41 * k1[k] + A42 * k2[k] + A43 * k3[k]
                rhs(arg, p, f)
                for k in range(S):
                    k4[k] = f[k] + ih * (C41 * k1[k] + C42 * k2[k] + C43 * k3[k])
                lu_solve(jw, piv, k4)
                for k in range(S):
                    arg[k] = y[k] + A51 * k1[k] + A52 * k2[k] + A53 * k3[k] + A54 * k4[k]
                rhs(arg, p, f)
                for k in range(S):
                    k5[k] = f[k] + ih * (C51 * k1[k] + C52 * k2[k] + C53 * k3[k] + C54 * k4[k])
                lu_solve(jw, piv, k5)
                for k in range(S):
                    arg[k] += k5[k]  # embedded order-3 solution
                rhs(arg, p, f)
                for k in range(S):
                    k6[k] = f[k] + ih * (
                        C61 * k1[k] + C62 * k2[k] + C63 * k3[k] + C64 * k4[k] + C65 * k5[k]
                    )
                lu_solve(jw, piv, k6)
                for k in range(S):
                    ynew[k] = arg[k] + k6[k]
                err = _wnorm(k6, y, ynew, atol, rtol)
            else:
                err = np.inf
            if err <= 1.0:
                # accepted: dense output y(t + s h) = (1-s) y + s (ynew + (1-s)(q1 + s q2))
                t_new = t_end if last else t + h
                while j < T and (times[j] <= t_new or last):
                    s = min(max((times[j] - t) / h, 0.0), 1.0)
                    for k in range(S):
                        q1 = D21 * k1[k] + D22 * k2[k] + D23 * k3[k] + D24 * k4[k] + D25 * k5[k]
                        q2 = D31 * k1[k] + D32 * k2[k] + D33 * k3[k] + D34 * k4[k] + D35 * k5[k]
                        arg[k] = (1.0 - s) * y[k] + s * (ynew[k] + (1.0 - s) * (q1 + s * q2))
                    out[j] = observe(arg, p)
                    j += 1
                for k in range(S):
                    y[k] = ynew[k]
                t = t_new
                n_acc += 1
                if j == T:
                    status = STATUS_OK
                    break
                fac_h = 6.0 if err == 0.0 else min(6.0, max(0.2, 0.9 * err**-0.25))
                if rejected:
                    fac_h = min(fac_h, 1.0)
                h *= fac_h
                rejected = False
            else:
                h *= 0.1 if not np.isfinite(err) else max(0.2, 0.9 * err**-0.25)
                rejected = True
            if h < 1e-14 * max(1.0, abs(t)):
                status = STATUS_STEP_TOO_SMALL
                break
        nonfinite = False
        for jj in range(T):
            if not np.isfinite(out[jj]):
                nonfinite = True
        if status == STATUS_OK and nonfinite:
            status = STATUS_NONFINITE
        if status != STATUS_OK:
            for jj in range(j, T):
                out[jj] = np.nan
        return status, n_acc

    @nb.njit(parallel=True)
    def solve(params, y0, t_start, times, rtol, atol, max_steps, out, status, n_steps):
        n = params.shape[0]
        n_chunks = min(n, 8 * nb.get_num_threads())
        for c in nb.prange(n_chunks):
            ws = np.empty((10, S))
            jw = np.empty((S, S))
            piv = np.empty(S, np.int64)
            for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
                st, na = _one(
                    params[i], y0[i], t_start[i], times[i], rtol, atol[i], max_steps,
                    out[i], ws, jw, piv,
                )  # fmt: skip
                status[i] = st
                n_steps[i] = na
        return None

    return solve
