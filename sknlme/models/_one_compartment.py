"""One-compartment pharmacokinetics with first-order oral absorption (SSfol)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data import Padded, to_padded
from ..data._records import covariate_columns
from ..simulate._closed_form import (
    chunk_bounds,
    oral1c_loglik,
    oral1c_predict,
    oral1c_simulate,
)
from ..simulate._random import draw_seed
from ._base import Model
from ._error import make_error_model, warn_nonfinite

NOMINAL_TIMES = np.array([0.0, 0.25, 0.5, 1.0, 2.0, 3.5, 5.0, 7.0, 9.0, 12.0, 24.0])
_STRUCT = ("log_ke", "log_ka", "log_Cl")
_STRUCT_MEAN, _STRUCT_SD = [-2.5, 0.5, -3.2], [0.5, 1.0, 0.5]
_ERROR_PRIOR = {  # (means, SDs) of the log error parameters
    "additive": ([-0.5], [0.7]),  # sigma ~ 0.6 mg/L, x/÷ 2
    "proportional": ([-1.9], [0.7]),  # b ~ 15 %
    "combined": ([-1.0, -2.3], [0.7, 0.7]),  # a ~ 0.37 mg/L, b ~ 10 %
}


def _contiguous(padded):
    amounts = np.where(padded.dose_mask, padded.dose_amounts, 0.0)
    return (
        np.ascontiguousarray(padded.times, dtype=float),
        np.ascontiguousarray(padded.dose_times, dtype=float),
        np.ascontiguousarray(amounts, dtype=float),
    )


def _check_doses(padded):
    no_dose = ~padded.dose_mask.any(axis=1)
    if no_dose.any():
        raise ValueError(
            f"individual at row {int(np.argmax(no_dose))} has no dose: the one-compartment "
            "oral model needs at least one dose event per individual"
        )


class OneCompartmentOral(Model):
    """One-compartment model with first-order absorption, as R nlme's ``SSfol``.

    The concentration after a dose ``D`` given at time ``t_D`` is

        C(t) = D ke ka / (Cl (ka - ke)) (exp(-ke s) - exp(-ka s)),  s = t - t_D >= 0,

    and 0 before the dose; repeated doses add up (superposition). Parameters
    are ``log_ke``, ``log_ka``, ``log_Cl`` (elimination and absorption rate
    constants in 1/h, clearance in L/kg/h for doses in mg/kg), as in
    ``SSfol`` (``V = Cl / ke``), followed by the residual error parameters.
    At ``ka = ke`` the formula has the limit ``D k² s exp(-k s) / Cl``; the
    compiled kernel evaluates it without cancellation for any ``ka ≈ ke``.

    Default prior (log scale), chosen to contain the theophylline estimates
    of R nlme (lKe −2.45, lKa 0.47 with between-subject SD 0.64, lCl −3.23
    with SD 0.17, residual SD 0.71 mg/L, i.e. log SD −0.34): means
    ``[-2.5, 0.5, -3.2]`` and SDs ``[0.5, 1.0, 0.5]`` for the structural
    parameters, so the 95 % subject range of lKa (−0.8 to 1.7) lies within
    1.3 prior SD and that of lCl within 0.8 prior SD; the prior still allows
    half-lives from 3.5 to 23 h (ke within 2 SD) and absorption half-times
    from 5 min to 2.5 h. Additive error: mean −0.5, SD 0.7 (sigma from 0.15
    to 2.4 mg/L within 2 SD). Proportional: log b mean −1.9 (15 %), SD 0.7.
    Combined: log a −1.0, log b −2.3, SDs 0.7.

    Parameters
    ----------
    error : {"additive", "proportional", "combined"} or ErrorModel, default="additive"
        Residual error model.
    prior_mean : array-like of shape (n_params,), default=None
        Prior mean; the default above when None.
    prior_cov : array-like of shape (n_params,) or (n_params, n_params), default=None
        Prior variances or covariance; the default above when None.
    design : DataFrame, default=None
        Individuals table whose designs (observation times, doses,
        covariates) :meth:`sample_design` resamples with replacement. When
        None, theophylline-like designs are drawn: one dose U(3, 6) mg/kg at
        time 0, 11 samples at nominal 0, 0.25, 0.5, 1, 2, 3.5, 5, 7, 9, 12, 24 h
        with individual jitter (factor U(0.9, 1.15), U(0.95, 1.04) at 24 h, so
        times stay sorted and within 0-25 h; time 0 exact), and for 30 % of
        individuals one non-zero time dropped (10 samples).

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.models import OneCompartmentOral
    >>> model = OneCompartmentOral()
    >>> model.param_names
    ('log_ke', 'log_ka', 'log_Cl', 'log_sigma')
    >>> X, phi = model.simulate(5, random_state=0)
    >>> X["records"].iloc[0].n_obs in (10, 11)
    True
    >>> model.log_likelihood(phi.to_numpy()[:, None, :], X).shape
    (5, 1)
    >>> model.predict(phi.to_numpy(), X, times=np.linspace(0, 24, 49)).shape
    (5, 49, 1)
    """

    @property
    def likelihood_symmetries(self):
        """``ka <-> ke``: ``C(t)`` is the same with the two rate constants swapped."""
        rest = tuple(range(2, self.n_params))
        return ((1, 0, *rest),)

    @property
    def unit_exponents(self):
        """Exponents in (time, amount, concentration), shape (n_params, 3).

        ``ke``, ``ka``: ``time^-1``; ``Cl`` (volume / time): ``time^-1 amount
        concentration^-1``; additive ``sigma`` (``log_sigma``, ``log_a``):
        concentration; proportional ``log_b``: none.

        Examples
        --------
        >>> from sknlme.models import OneCompartmentOral
        >>> OneCompartmentOral().unit_exponents.tolist()
        [[-1.0, 0.0, 0.0], [-1.0, 0.0, 0.0], [-1.0, 1.0, -1.0], [0.0, 0.0, 1.0]]
        """
        units = {"log_ke": (-1, 0, 0), "log_ka": (-1, 0, 0), "log_Cl": (-1, 1, -1)}
        units |= {"log_sigma": (0, 0, 1), "log_a": (0, 0, 1)}
        return np.array([units.get(p, (0, 0, 0)) for p in self.param_names], dtype=float)

    exact_additive_error = True  # see sknlme.models.additive_log_sd

    def __init__(self, error="additive", prior_mean=None, prior_cov=None, design=None):
        self.error = error
        self.error_model = make_error_model(error)
        self.design = design
        mean, sd = _ERROR_PRIOR.get(self.error_model.kind, ([-0.5], [0.7]))
        super().__init__(
            _STRUCT + self.error_model.param_names,
            np.r_[_STRUCT_MEAN, mean] if prior_mean is None else prior_mean,
            np.square(np.r_[_STRUCT_SD, sd]) if prior_cov is None else prior_cov,
            output_names=("concentration",),
            name="one-compartment-oral",
            error_params=self.error_model.param_names,
        )
        if design is not None:
            if not isinstance(design, pd.DataFrame):
                raise TypeError(f"design must be an individuals DataFrame, got {type(design)}")
            self._design_padded = to_padded(design, n_outputs=1)
            _check_doses(self._design_padded)
            self._design_covariates = design[covariate_columns(design)]

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
        covariates : DataFrame or None
            Simulator covariates, one row per individual.

        Examples
        --------
        >>> from sknlme.models import OneCompartmentOral
        >>> design, covariates = OneCompartmentOral().sample_design(2, random_state=0)
        >>> design.n_individuals, covariates is None
        (2, True)
        """
        from sklearn.utils import check_random_state

        rng = check_random_state(random_state)
        if self.design is not None:
            rows = rng.randint(0, self._design_padded.n_individuals, size=n)
            design = self._design_padded.take(rows)
            design.values[:] = np.nan
            cov = self._design_covariates.iloc[rows].reset_index(drop=True)
            return design, (cov if cov.shape[1] else None)
        T = NOMINAL_TIMES.size
        factor = rng.uniform(0.9, 1.15, size=(n, T))
        factor[:, -1] = rng.uniform(0.95, 1.04, size=n)
        times = NOMINAL_TIMES * factor
        drop = rng.uniform(size=n) < 0.3
        which = rng.randint(1, T, size=n)  # a non-zero time
        cols = np.arange(T)[None, :]
        src = np.minimum(cols + (drop[:, None] & (cols >= which[:, None])), T - 1)
        times = np.take_along_axis(times, src, axis=1)  # dropped rows repeat the last time
        obs_mask = np.ones((n, T), dtype=bool)
        obs_mask[:, -1] = ~drop
        design = Padded(
            times,
            np.full((n, T, 1), np.nan),
            obs_mask,
            np.zeros((n, 1)),
            rng.uniform(3.0, 6.0, size=(n, 1)),
            np.ones((n, 1), dtype=bool),
        )
        return design, None

    # ------------------------------------------------------------- simulation
    def _predict(self, phi, design, covariates):
        _check_doses(design)
        times, dose_t, dose_a = _contiguous(design)
        out = np.empty(times.shape)
        oral1c_predict(np.ascontiguousarray(phi, dtype=float), times, dose_t, dose_a, out)
        return out[..., None]

    def _add_noise(self, pred, phi, rng):
        return self.error_model.add_noise(pred, phi[:, 3:], rng)

    def _simulate(self, phi, design, covariates, rng):
        _check_doses(design)
        times, dose_t, dose_a = _contiguous(design)
        out = np.empty(times.shape)
        phi = np.ascontiguousarray(phi, dtype=float)
        oral1c_simulate(phi, times, dose_t, dose_a, self.error_model.code, draw_seed(rng), out)
        return out[..., None]

    def _log_likelihood(self, phi, padded, covariates):
        _check_doses(padded)
        times, dose_t, dose_a = _contiguous(padded)
        mask = padded.value_mask()[..., 0]
        values = np.where(mask, padded.values[..., 0], 0.0)
        out = oral1c_loglik(
            np.ascontiguousarray(phi, dtype=float),
            times,
            dose_t,
            dose_a,
            values,
            mask,
            self.error_model.code,
            chunk_bounds(phi.shape[0]),
        )
        warn_nonfinite(out, f"{self.name}, {self.error_model.kind} error")
        return out

    def __repr__(self):
        return f"OneCompartmentOral(error={self.error_model.kind!r})"
