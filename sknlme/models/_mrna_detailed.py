"""mRNA transfection, detailed model: a 4-state ODE with a switch at t0.

The detailed single-cell model of Fröhlich et al. (2018) in the form used by
Arruda et al. (ICML 2024, repository Amortized-NLME-Models,
``models/froehlich_model_detailed.py`` and the Julia simulator
``models/SimulatorFroehlich``): mRNA ``m`` (scaled by the initial amount
``m0``), endosomes ``e``, free ribosomes ``r`` and protein ``p``::

    m' = -delta1_m0 m e - k1_m0 m r + k2 (r0_m0 - r)
    e' =  delta1_m0 m e - delta2 (e0_m0 - e)
    r' =  k2 (r0_m0 - r) - k1_m0 m r
    p' =  k2_m0_scale (r0_m0 - r) - gamma p

for ``t > t0`` with ``(m, e, r, p)(t0) = (1, e0_m0, r0_m0, 0)``; every state
is at rest before ``t0``, so ``y = log(offset)`` there. Observation:
``y = log(p + offset) + sigma eps``, ``eps ~ N(0, 1)``, every 10 min from
1/6 h to 30 h (180 points). All 11 parameters are on the natural-log scale
with the paper's prior N(mean, diag(var)), mean
``[-1, -1, -1, 12, -1, 1, -1, -6, 0, 0, -1]``, variances
``[5, 5, 2, 1, 2, 2, 2, 5, 2, 5, 2]``.

How it is solved (mathematically the same system): the kernel integrates
``(m, log e, s, P)`` with ``s = (r0_m0 - r) / r0_m0`` (no cancellation in
``r0_m0 - r``) and ``P = p / (k2_m0_scale r0_m0)``. The endosome equation, as
in the reference code, has the unstable term ``+delta2 (e - e0_m0)``, so ``e``
grows like ``exp(delta2 t)`` and overflows for large ``delta2`` prior draws;
in log form it cannot. ``e`` is capped at ``exp(600)`` where it multiplies
``m``: by then ``m`` is below 1e-250 and the cap changes no observable digit.
The protein is floored at 0 inside the logarithm (the reference floors
``p + offset`` at 1e-12); mathematically ``p >= 0``.
"""

from __future__ import annotations

import warnings

import numba as nb
import numpy as np

from .._numerics import LOG_2PI
from ..data._padded import fixed_design
from ..simulate._ode import STATUS_MESSAGES, make_rodas_solver
from ._base import Model
from ._mrna import TIMES

_U_CAP = 600.0  # cap of log e where e multiplies m (see module docstring)

PARAM_NAMES = (
    "log_delta1_m0",
    "log_delta2",
    "log_e0_m0",
    "log_k2_m0_scale",
    "log_k2",
    "log_k1_m0",
    "log_r0_m0",
    "log_gamma",
    "log_t0",
    "log_offset",
    "log_sigma",
)
PRIOR_MEAN = np.array([-1.0, -1.0, -1.0, 12.0, -1.0, 1.0, -1.0, -6.0, 0.0, 0.0, -1.0])
PRIOR_VAR = np.array([5.0, 5.0, 2.0, 1.0, 2.0, 2.0, 2.0, 5.0, 2.0, 5.0, 2.0])

# kernel parameter vector p: d1, d2, e0, k2s, k2, k1, r0, gamma, offset, c = k2s * r0


@nb.njit(cache=True)
def _rhs(y, p, out):
    m, u, s, P = y[0], y[1], y[2], y[3]
    d1, d2, e0, k2, k1, r0, gamma = p[0], p[1], p[2], p[4], p[5], p[6], p[7]
    e = np.exp(min(u, _U_CAP))
    out[0] = -d1 * m * e - k1 * r0 * m * (1.0 - s) + k2 * r0 * s
    out[1] = d1 * m + d2 * (1.0 - e0 / e) if u < _U_CAP else d1 * m + d2
    out[2] = -k2 * s + k1 * m * (1.0 - s)
    out[3] = s - gamma * P


@nb.njit(cache=True)
def _jac(y, p, out):
    m, u, s = y[0], y[1], y[2]
    d1, d2, e0, k2, k1, r0, gamma = p[0], p[1], p[2], p[4], p[5], p[6], p[7]
    e = np.exp(min(u, _U_CAP))
    out[:] = 0.0
    out[0, 0] = -d1 * e - k1 * r0 * (1.0 - s)
    out[0, 1] = -d1 * m * e if u < _U_CAP else 0.0
    out[0, 2] = k1 * r0 * m + k2 * r0
    out[1, 0] = d1
    out[1, 1] = d2 * e0 / e if u < _U_CAP else 0.0
    out[2, 0] = k1 * (1.0 - s)
    out[2, 2] = -k2 - k1 * m
    out[3, 2] = 1.0
    out[3, 3] = -gamma


@nb.njit(cache=True)
def _observe(y, p):
    return np.log(max(p[9] * y[3], 0.0) + p[8])


_solve = make_rodas_solver(_rhs, _jac, _observe, 4)


def solve_detailed(phi, times, rtol=5e-7, max_steps=50_000):
    """Noise-free observable ``log(p(t) + offset)`` of the detailed model.

    Parameters
    ----------
    phi : ndarray of shape (n, 11)
        Log-scale parameters in the order of :data:`PARAM_NAMES` (sigma unused).
    times : ndarray of shape (n, T)
        Observation times, non-decreasing per row.
    rtol : float, default=5e-7
        Relative tolerance; absolute tolerances are scaled from it (see code).
    max_steps : int, default=50_000
        Step budget per individual.

    Returns
    -------
    out : ndarray of shape (n, T)
        NaN where the solver failed.
    status : ndarray of shape (n,)
        ``sknlme.simulate._ode.STATUS_*`` codes (0 = success).
    n_steps : ndarray of shape (n,)
        Accepted steps per individual.
    """
    phi = np.ascontiguousarray(phi, dtype=float)
    times = np.ascontiguousarray(times, dtype=float)
    n = phi.shape[0]
    x = np.exp(phi)
    d1, d2, e0, k2s, k2, k1, r0, gamma, t0, offset = x[:, :10].T
    c = k2s * r0
    params = np.column_stack([d1, d2, e0, k2s, k2, k1, r0, gamma, offset, c])
    y0 = np.column_stack([np.ones(n), np.log(e0), np.zeros(n), np.zeros(n)])
    # Tolerances: relative error rtol on every state, with absolute floors: P and
    # s at rtol * offset / c (an error there is invisible in log(c P + offset)),
    # log e at rtol (its error is a relative error of e) and m (in [0, 1]) at
    # rtol * 1e-3. Tuned on 4,000 prior draws against a reference at rtol 1e-11:
    # the max error of y was 5.2e-5 at rtol 5e-7, 7.4e-5 at 1e-6, 1e-4 at 1e-5
    # (a floor on m of rtol * 1e-6 instead of 1e-3 changed nothing but cost 40 %
    # more steps). Some draws converge slowly (order reduction in stiff phases).
    q = np.maximum(rtol * offset / c, 1e-300)
    atol = np.column_stack([np.full(n, rtol * 1e-3), np.full(n, rtol), q, q])
    out = np.empty(times.shape)
    status = np.empty(n, np.int64)
    n_steps = np.empty(n, np.int64)
    _solve(params, y0, t0, times, float(rtol), atol, int(max_steps), out, status, n_steps)
    return out, status, n_steps


def _report_failures(name, status):
    bad = np.flatnonzero(status)
    if bad.size == 0:
        return
    parts = []
    for code in np.unique(status[bad]):
        idx = np.flatnonzero(status == code)
        shown = ", ".join(str(i) for i in idx[:10]) + (", ..." if idx.size > 10 else "")
        parts.append(f"{STATUS_MESSAGES[int(code)]} ({idx.size}): [{shown}]")
    warnings.warn(
        f"{name}: {bad.size} of {status.size} simulations failed; their values after the "
        f"failure are NaN. By cause, with individual indices: " + "; ".join(parts),
        RuntimeWarning,
        stacklevel=3,
    )


class MRNATransfectionDetailed(Model):
    """Detailed mRNA transfection model (Fröhlich et al. 2018), 11 parameters.

    A 4-state ODE (mRNA, endosomes, ribosomes, protein) that switches on at
    ``t0``, solved by a compiled Rodas4 integrator
    (:mod:`sknlme.simulate._ode`); observation
    ``y = log(p + offset) + sigma eps`` every 10 min from 1/6 h to 30 h.
    Equations, prior and numerical choices: see the module docstring.

    Parameters
    ----------
    rtol : float, default=5e-7
        Relative tolerance of the integrator. At 5e-7 the error of ``y`` (the
        relative error of ``p + offset``) stayed below 6e-5 on 4,000 prior
        draws against a reference at rtol 1e-11.
    max_steps : int, default=50_000
        Step budget per individual; failures give NaN values and a warning
        naming the individuals.

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.models import MRNATransfectionDetailed
    >>> model = MRNATransfectionDetailed()
    >>> model.n_params, model.has_likelihood
    (11, True)
    >>> X, phi = model.simulate(3, random_state=0)
    >>> X["records"].iloc[0].values.shape
    (180, 1)
    >>> ll = model.log_likelihood(phi.to_numpy()[:, None, :], X)
    >>> ll.shape, bool(np.isfinite(ll).all())
    ((3, 1), True)
    """

    def __init__(self, rtol=5e-7, max_steps=50_000):
        self.rtol = rtol
        self.max_steps = max_steps
        super().__init__(
            PARAM_NAMES,
            PRIOR_MEAN,
            PRIOR_VAR,
            output_names=("log_fluorescence",),
            name="mrna-transfection-detailed",
            error_params=("log_sigma",),
        )

    def sample_design(self, n, random_state=None):
        """Every individual is observed every 10 min from 1/6 h to 30 h (180 points).

        Parameters
        ----------
        n : int
            Number of designs.
        random_state : int, RandomState or None
            Unused: the design is fixed.

        Returns
        -------
        design : Padded
            Observation times and doses (values all NaN).
        covariates : DataFrame or None
            Simulator covariates, one row per individual.

        Examples
        --------
        >>> from sknlme.models import MRNATransfectionDetailed
        >>> design, _ = MRNATransfectionDetailed().sample_design(2)
        >>> design.times.shape
        (2, 180)
        """
        design = fixed_design(TIMES, n)
        return design, None

    def _solve(self, phi, times):
        if not (float(self.rtol) > 0 and int(self.max_steps) > 0):
            raise ValueError(
                f"rtol and max_steps must be positive, got {self.rtol}, {self.max_steps}"
            )
        if not np.all(np.isfinite(phi)):
            i, j = np.argwhere(~np.isfinite(phi))[0]
            raise ValueError(f"parameter {self.param_names[j]} of individual {i} is {phi[i, j]}")
        order = None
        if np.any(np.diff(times, axis=1) < 0):
            order = np.argsort(times, axis=1, kind="stable")
            times = np.take_along_axis(times, order, axis=1)
        out, status, _ = solve_detailed(phi, times, self.rtol, self.max_steps)
        _report_failures(self.name, status)
        if order is not None:
            unsorted = np.empty_like(out)
            np.put_along_axis(unsorted, order, out, axis=1)
            out = unsorted
        return out

    def _predict(self, phi, design, covariates):
        return self._solve(phi, design.times)[..., None]

    def _add_noise(self, pred, phi, rng):
        sigma = np.exp(phi[:, -1])
        return pred + sigma[:, None, None] * rng.standard_normal(pred.shape)

    def _log_likelihood(self, phi, padded, covariates):
        n, K, d = phi.shape
        T = padded.times.shape[1]
        mask = padded.value_mask()[..., 0]  # (n, T)
        y = np.where(mask, padded.values[..., 0], 0.0)
        out = np.empty((n, K))
        step = max(1, 2_000_000 // max(1, K * T))  # bound memory: ~2e6 predictions a chunk
        for a in range(0, n, step):
            b = min(n, a + step)
            flat = phi[a:b].reshape(-1, d)
            pred = self._solve(flat, np.repeat(padded.times[a:b], K, axis=0)).reshape(b - a, K, T)
            log_sigma = phi[a:b, :, -1]
            z = (y[a:b, None, :] - pred) * np.exp(-log_sigma)[..., None]
            per_point = -0.5 * z**2 - log_sigma[..., None] - 0.5 * LOG_2PI
            ll = np.where(mask[a:b, None, :], per_point, 0.0).sum(-1)
            # failed simulations (NaN prediction, warned above) get zero likelihood
            out[a:b] = np.where(np.isnan(ll), -np.inf, ll)
        return out
