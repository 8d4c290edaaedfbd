r"""Parent–metabolite pharmacokinetics with hepatic first pass (sunitinib type).

The semi-physiological model of a parent drug and its metabolite (Yu et al.,
Br J Clin Pharmacol 2015, sunitinib and SU12662), as in the PK example of
Arruda et al. (ICML 2024, Amortized-NLME-Models). Five amounts (mg), time in
hours: depot ``A1``; parent central ``A2`` (volume ``V2``) with peripheral
``A5`` (``V5``); metabolite central ``A3`` (``V3``) with peripheral ``A4``
(``V4``). Oral doses enter ``A1``; absorbed drug and the parent returning
from the central compartment pass the liver (blood flow ``Q_H``), where a
fraction ``CLP / (Q_H + CLP)`` is extracted; of it the fraction ``f_m``
becomes metabolite. The hepatic venous concentration is

    CLIV = (ka A1 + Q_H / V2 A2) / (Q_H + CLP)

and the system reads

    A1' = -ka A1
    A2' = Q_H CLIV - Q_H / V2 A2 - Q25 / V2 A2 + Q25 / V5 A5
    A3' = f_m CLP CLIV - (CLM + Q34) / V3 A3 + Q34 / V4 A4
    A4' = Q34 / V3 A3 - Q34 / V4 A4
    A5' = Q25 / V2 A2 - Q25 / V5 A5.

Substituting ``CLIV`` gives the linear system ``A' = M A`` with, writing
``h = Q_H + CLP`` and ``kH = Q_H / V2``,

    M[0, 0] = -ka
    M[1, 0] = Q_H ka / h          M[1, 1] = -kH CLP / h - Q25 / V2
    M[1, 4] = Q25 / V5
    M[2, 0] = f_m CLP ka / h      M[2, 1] = f_m CLP kH / h
    M[2, 2] = -(CLM + Q34) / V3   M[2, 3] = Q34 / V4
    M[3, 2] = Q34 / V3            M[3, 3] = -Q34 / V4
    M[4, 1] = Q25 / V2            M[4, 4] = -Q25 / V5

(``Q_H CLIV - kH A2 = Q_H ka / h A1 - kH CLP / h A2``); every other entry is
0. Its coefficients are constant between doses, so it is solved exactly:
``A(t + s) = expm(M s) A(t)`` and each dose adds its amount to ``A1``
(:func:`sknlme.simulate.linear_dosed_solve`, compiled).

Covariates: body weight ``WT`` (kg) scales clearances by ``(WT/70)^0.75``
(``CLP``, ``CLM``, ``Q25``, ``Q34`` and ``Q_H = 80 (WT/70)^0.75`` L/h) and
volumes by ``WT/70`` (``V2``, ``V3``, ``V4`` and ``V5 = 588 WT/70`` L);
``DOS`` (mg) is the individual's dose amount: every dose event of an
individual must give that amount (so a network, which conditions on the
covariates, sees it even where it does not see the dose records).

Parameters (natural log, in this order; prior mean
``[-5, 6.5, 2.5, 2.5, 6.5, 0, 6.5, -3, -1, -1, 0]``, variances
``[4.5, 1, 1, 1, 1, 1, 1, 4.5, 2, 2, 1]`` as in the original):
``log_Q25, log_V2, log_CLP, log_CLM, log_V3, log_Q34, log_V4, log_ka,
log_sigma_parent, log_sigma_metabolite, log_fm_ratio`` with
``f_m = 0.21 exp(log_fm_ratio)`` (the original's ``0.21 eta``, ``eta`` on the
log scale; not capped at 1, so the likelihood is smooth in it). The
original names its parameters theta1..theta11 only, so the mapping is
chosen by the magnitudes: the three means 6.5 (665 L) are the volumes
``V2, V3, V4`` (Yu: 1360, 635, 388 L), the two means 2.5 (12 L/h) the
clearances ``CLP, CLM`` (Yu: 35.7, 17.1 L/h), the two means -1 with
variance 2 the log-scale residual SDs (0.37) and the last (mean 0,
variance 1) the random factor of ``f_m``. Of the two wide priors
(variance 4.5), ``ka`` gets mean -3 (0.05/h: time to peak about 30 h at the
prior mean, sunitinib's 6-12 h within one prior SD) and ``Q25`` mean -5
(0.007 L/h), since ``ka = exp(-5)`` would put the typical peak at 80 h.
The original unpacks theta7 twice (``Q34`` and ``V4`` share a value, theta6
is unused); here every parameter has its own role, theta6 being ``Q34``.

Observations: ``y_parent = log(max(A2, 0.001)) + sigma_parent eps`` and
``y_metabolite = log(max(A3, 0.001)) + sigma_metabolite eps`` (amounts in
mg, floored at 0.001 before the log, as in the original).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .._numerics import LOG_2PI
from ..data import Padded, to_padded
from ..data._records import covariate_columns
from ..simulate._linear_ode import linear_dosed_solve
from ._base import Model

PARAM_NAMES = (
    "log_Q25",
    "log_V2",
    "log_CLP",
    "log_CLM",
    "log_V3",
    "log_Q34",
    "log_V4",
    "log_ka",
    "log_sigma_parent",
    "log_sigma_metabolite",
    "log_fm_ratio",
)
PRIOR_MEAN = np.array([-5.0, 6.5, 2.5, 2.5, 6.5, 0.0, 6.5, -3.0, -1.0, -1.0, 0.0])
PRIOR_VAR = np.array([4.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 4.5, 2.0, 2.0, 1.0])
FLOOR = 1e-3  # amounts (mg) are floored here before the log
FM_TYPICAL, QH_TYPICAL, V5_TYPICAL = 0.21, 80.0, 588.0
# default design: 28 once-daily doses (a 4-week cycle), 12 samples (h)
DOSE_TIMES = 24.0 * np.arange(28)
NOMINAL_TIMES = np.array([1.0, 2.0, 4.0, 8.0, 12.0, 23.5, 167.5, 335.5, 503.5, 650.0, 656.0, 672.0])
DOSES = np.array([25.0, 37.5, 50.0])
_OUT_STATES = np.array([1, 2], dtype=np.int64)


def system_matrix(phi, wt):
    """The matrix ``M`` of ``A' = M A`` for log parameters ``phi`` and weights ``wt``.

    Parameters
    ----------
    phi : ndarray of shape (n, 11)
        Log parameters in the order of :data:`PARAM_NAMES`.
    wt : ndarray of shape (n,)
        Body weights (kg).

    Returns
    -------
    ndarray of shape (n, 5, 5)
        States ``A1..A5`` in order (see the module docstring).

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.models._parent_metabolite import PRIOR_MEAN, system_matrix
    >>> m = system_matrix(PRIOR_MEAN[None], np.array([70.0]))
    >>> m.shape, bool(np.isclose(m[0, 0, 0], -np.exp(-3.0)))
    ((1, 5, 5), True)
    """
    x = np.exp(phi)
    q25, v2, clp, clm, v3, q34, v4, ka = (x[:, j] for j in range(8))
    fm = FM_TYPICAL * x[:, 10]
    w = np.asarray(wt, dtype=float) / 70.0
    cs, vs = w**0.75, w
    q25, clp, clm, q34, qh = q25 * cs, clp * cs, clm * cs, q34 * cs, QH_TYPICAL * cs
    v2, v3, v4, v5 = v2 * vs, v3 * vs, v4 * vs, V5_TYPICAL * vs
    h, kh = qh + clp, qh / v2
    m = np.zeros((phi.shape[0], 5, 5))
    m[:, 0, 0] = -ka
    m[:, 1, 0] = qh * ka / h
    m[:, 1, 1] = -kh * clp / h - q25 / v2
    m[:, 1, 4] = q25 / v5
    m[:, 2, 0] = fm * clp * ka / h
    m[:, 2, 1] = fm * clp * kh / h
    m[:, 2, 2] = -(clm + q34) / v3
    m[:, 2, 3] = q34 / v4
    m[:, 3, 2] = q34 / v3
    m[:, 3, 3] = -q34 / v4
    m[:, 4, 1] = q25 / v2
    m[:, 4, 4] = -q25 / v5
    return m


class ParentMetabolite(Model):
    """Parent–metabolite PK model with hepatic first pass (sunitinib type), 11 parameters.

    A 5-state linear ODE (depot; parent central and peripheral; metabolite
    central and peripheral), solved exactly by matrix exponentials between
    repeated oral doses; covariates ``WT`` (kg) and ``DOS`` (mg, the amount
    of each of the individual's doses); two outputs, the log amounts of
    parent and metabolite in their central compartments (floored at 0.001
    mg) with additive log-scale errors. Equations, derivation, parameter
    mapping and prior: see the module docstring (:mod:`sknlme.models._parent_metabolite`).

    Parameters
    ----------
    design : DataFrame, default=None
        Individuals table (with ``WT`` and ``DOS`` columns) whose designs
        :meth:`sample_design` resamples with replacement. When None, designs
        are drawn: ``WT`` log-normal (median 75 kg, log SD 0.2, clipped to
        40-150 kg), ``DOS`` 25, 37.5 or 50 mg (probabilities 0.2, 0.3, 0.5),
        28 once-daily doses at 0, 24, ..., 648 h and 12 samples at nominal
        1, 2, 4, 8, 12, 23.5, 167.5, 335.5, 503.5, 650, 656, 672 h, each
        times an individual factor U(0.97, 1.03).

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.models import ParentMetabolite
    >>> model = ParentMetabolite()
    >>> model.n_params, model.output_names, model.covariate_names
    (11, ('log_parent', 'log_metabolite'), ('WT', 'DOS'))
    >>> X, phi = model.simulate(3, random_state=0)
    >>> X["records"].iloc[0].values.shape, X["records"].iloc[0].n_doses
    ((12, 2), 28)
    >>> ll = model.log_likelihood(phi.to_numpy()[:, None, :], X)
    >>> ll.shape, bool(np.isfinite(ll).all())
    ((3, 1), True)
    """

    def __init__(self, design=None):
        self.design = design
        super().__init__(
            PARAM_NAMES,
            PRIOR_MEAN,
            PRIOR_VAR,
            output_names=("log_parent", "log_metabolite"),
            covariate_names=("WT", "DOS"),
            name="parent-metabolite",
            error_params=("log_sigma_parent", "log_sigma_metabolite"),
        )
        if design is not None:
            if not isinstance(design, pd.DataFrame):
                raise TypeError(f"design must be an individuals DataFrame, got {type(design)}")
            self._design_padded = to_padded(design, n_outputs=2)
            self._design_covariates = design[covariate_columns(design)]
            self._amounts(self._design_padded, self._design_covariates)

    # ----------------------------------------------------------------- design
    def sample_design(self, n, random_state=None):
        """Sample ``n`` designs (see the class docstring).

        Parameters
        ----------
        n : int
            Number of designs.
        random_state : int, RandomState or None
            Controls the draws.

        Returns
        -------
        design : Padded
            Observation times and doses (values all NaN).
        covariates : DataFrame
            Columns ``WT`` and ``DOS``, one row per individual.

        Examples
        --------
        >>> from sknlme.models import ParentMetabolite
        >>> design, cov = ParentMetabolite().sample_design(2, random_state=0)
        >>> design.times.shape, design.dose_times.shape, list(cov.columns)
        ((2, 12), (2, 28), ['WT', 'DOS'])
        """
        from sklearn.utils import check_random_state

        rng = check_random_state(random_state)
        if self.design is not None:
            rows = rng.randint(0, self._design_padded.n_individuals, size=n)
            design = self._design_padded.take(rows)
            design.values[:] = np.nan
            return design, self._design_covariates.iloc[rows].reset_index(drop=True)
        wt = np.clip(75.0 * np.exp(0.2 * rng.standard_normal(n)), 40.0, 150.0)
        dos = DOSES[rng.choice(DOSES.size, size=n, p=[0.2, 0.3, 0.5])]
        times = NOMINAL_TIMES * rng.uniform(0.97, 1.03, size=(n, NOMINAL_TIMES.size))
        D = DOSE_TIMES.size
        design = Padded(
            np.sort(times, axis=1),
            np.full(times.shape + (2,), np.nan),
            np.ones(times.shape, dtype=bool),
            np.broadcast_to(DOSE_TIMES, (n, D)).copy(),
            np.repeat(dos[:, None], D, axis=1),
            np.ones((n, D), dtype=bool),
        )
        return design, pd.DataFrame({"WT": wt, "DOS": dos})

    # ------------------------------------------------------------- simulation
    def _amounts(self, padded, covariates):
        """Dose amounts of the records, checked against ``DOS``; and ``WT``."""
        cov = self.covariate_array(covariates, padded.n_individuals)
        wt, dos = cov[:, 0], cov[:, 1]
        for name, v in (("WT", wt), ("DOS", dos)):
            if np.any(v <= 0):
                i = int(np.argmax(v <= 0))
                raise ValueError(f"covariate {name!r} of individual {i} is {v[i]}, not positive")
        dm = padded.dose_mask
        no_dose = ~dm.any(axis=1)
        if no_dose.any():
            i = int(np.argmax(no_dose))
            raise ValueError(f"individual at row {i} has no dose: {self.name} needs dose events")
        amounts = np.where(dm, padded.dose_amounts, 0.0)
        off = dm & ~np.isclose(amounts, dos[:, None], rtol=1e-9, atol=0.0)
        if off.any():
            i, j = np.argwhere(off)[0]
            raise ValueError(
                f"individual at row {i} has a dose of {amounts[i, j]} at time "
                f"{padded.dose_times[i, j]}, but its DOS is {dos[i]}: every dose of an "
                "individual must be its DOS amount"
            )
        return np.ascontiguousarray(amounts), wt

    def _solve(self, phi, padded, covariates):
        """Log amounts (n, T, 2) of parent and metabolite, floored at ``FLOOR``."""
        amounts, wt = self._amounts(padded, covariates)
        if not np.all(np.isfinite(phi)):
            i, j = np.argwhere(~np.isfinite(phi))[0]
            raise ValueError(f"parameter {self.param_names[j]} of individual {i} is {phi[i, j]}")
        m = system_matrix(phi, wt)
        out = np.empty(padded.times.shape + (2,))
        linear_dosed_solve(
            m,
            np.ascontiguousarray(padded.times, dtype=float),
            np.ascontiguousarray(padded.dose_times, dtype=float),
            amounts,
            0,
            _OUT_STATES,
            out,
        )
        bad = ~np.isfinite(out).all(axis=(1, 2))
        if bad.any():
            idx = np.flatnonzero(bad)
            shown = ", ".join(map(str, idx[:10])) + (", ..." if idx.size > 10 else "")
            warnings.warn(
                f"{self.name}: the matrix exponential overflowed for {idx.size} of {bad.size} "
                f"parameter vectors (individuals [{shown}]; rate constants beyond ~1e40/h, "
                "far outside the prior); their values are NaN",
                RuntimeWarning,
                stacklevel=3,
            )
            out[bad] = np.nan
        return np.log(np.maximum(out, FLOOR))  # NaN stays NaN

    def _predict(self, phi, design, covariates):
        return self._solve(phi, design, covariates)

    def _add_noise(self, pred, phi, rng):
        sigma = np.exp(phi[:, 8:10])
        return pred + sigma[:, None, :] * rng.standard_normal(pred.shape)

    def _log_likelihood(self, phi, padded, covariates):
        n, K, d = phi.shape
        T = padded.times.shape[1]
        mask = padded.value_mask()  # (n, T, 2)
        y = np.where(mask, padded.values, 0.0)
        out = np.empty((n, K))
        cov = covariates.reset_index(drop=True) if covariates is not None else None
        step = max(1, 1_000_000 // max(1, K * T))  # ~1e6 predicted times a chunk
        for a in range(0, n, step):
            b = min(n, a + step)
            rows = np.repeat(np.arange(a, b), K)
            sub = padded.take(rows)
            pred = self._solve(
                phi[a:b].reshape(-1, d), sub, None if cov is None else cov.iloc[rows]
            ).reshape(b - a, K, T, 2)
            log_sigma = phi[a:b, :, 8:10]  # (m, K, 2)
            z = (y[a:b, None] - pred) * np.exp(-log_sigma)[:, :, None, :]
            per_point = -0.5 * z**2 - log_sigma[:, :, None, :] - 0.5 * LOG_2PI
            ll = np.where(mask[a:b, None], per_point, 0.0).sum(axis=(2, 3))
            # failed simulations (NaN prediction, warned above) get zero likelihood
            out[a:b] = np.where(np.isnan(ll), -np.inf, ll)
        return out

    def __repr__(self):
        return "ParentMetabolite()" if self.design is None else "ParentMetabolite(design=...)"
