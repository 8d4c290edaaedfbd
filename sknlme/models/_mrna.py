"""mRNA transfection, simple model (Fröhlich et al., 2018)."""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state

from ..data._padded import Padded
from ..simulate._closed_form import chunk_bounds, mrna_loglik, mrna_predict, mrna_simulate
from ..simulate._random import draw_seed
from ._base import Model
from ._error import ErrorModel, warn_nonfinite

TIMES = np.arange(1, 181) / 6.0  # every 10 min from 1/6 h to 30 h
_NAMES = ("log_delta", "log_gamma", "log_k_m0_scale", "log_t0", "log_offset", "log_sigma")
_MEAN = [-3.0, -3.0, 5.0, 0.0, 0.0, -1.0]
_VAR = [5.0, 5.0, 11.0, 2.0, 6.0, 2.0]


def _as_range(value, name, low, high):
    arr = np.atleast_1d(np.asarray(value, dtype=float))
    if arr.size == 1:
        arr = np.r_[arr, arr]
    if arr.shape != (2,) or not (low <= arr[0] <= arr[1] <= high):
        raise ValueError(f"{name} must be a number or a (low, high) pair in [{low}, {high}]")
    return arr


class MRNATransfection(Model):
    """Single-cell mRNA transfection, the simple 6-parameter model.

    After transfection at time ``t0`` the mRNA ``m`` decays at rate ``delta``
    and is translated into protein ``p``, which degrades at rate ``gamma``:

        m(t) = exp(-delta (t - t0)),
        p(t) = k m0 scale / (delta - gamma) (exp(-gamma (t - t0)) - m(t)),

    both 0 before ``t0``; the observed log-fluorescence is
    ``y = log(p(t) + offset) + sigma eps``. All six parameters are on the log
    scale: ``log_delta, log_gamma, log_k_m0_scale, log_t0, log_offset,
    log_sigma``; prior means ``[-3, -3, 5, 0, 0, -1]``, variances
    ``[5, 5, 11, 2, 6, 2]`` (Arruda et al., 2024). ``delta`` and ``gamma``
    are exchangeable (``p`` is symmetric in them), so posteriors are bimodal.
    At ``delta = gamma`` the limit ``k m0 scale (t - t0) exp(-delta (t - t0))``
    is evaluated without cancellation.

    Parameters
    ----------
    max_time : float or (float, float), default=30.0
        Last observation time (h) of sampled designs; a pair draws it per
        individual uniformly in the range, giving ragged series (later time
        points are padding).
    missing_rate : float or (float, float), default=0.0
        Probability that a simulated value is missing (NaN); a pair draws the
        rate per individual uniformly in the range. Lets a network learn to
        handle missing values.

    Examples
    --------
    >>> from sknlme.models import MRNATransfection
    >>> model = MRNATransfection()
    >>> X, phi = model.simulate(3, random_state=0)
    >>> X["records"].iloc[0].n_obs, phi.shape
    (180, (3, 6))
    >>> ragged = MRNATransfection(max_time=(10, 30), missing_rate=0.1)
    >>> X, _ = ragged.simulate(3, random_state=0)
    >>> all(r.n_obs <= 180 for r in X["records"])
    True
    """

    exact_additive_error = True  # see sknlme.models.additive_log_sd

    def __init__(self, max_time=30.0, missing_rate=0.0):
        self.max_time = max_time
        self.missing_rate = missing_rate
        self._max_time = _as_range(max_time, "max_time", TIMES[0], TIMES[-1])
        self._missing = _as_range(missing_rate, "missing_rate", 0.0, 1.0)
        self.error_model = ErrorModel("additive")
        super().__init__(
            _NAMES,
            _MEAN,
            _VAR,
            output_names=("log_fluorescence",),
            name="mrna-transfection",
            error_params=("log_sigma",),
        )

    def sample_design(self, n, random_state=None):
        """``n`` designs on the 10-minute grid, cut at each individual's ``max_time``.

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
        >>> from sknlme.models import MRNATransfection
        >>> design, covariates = MRNATransfection().sample_design(2, random_state=0)
        >>> design.n_individuals, covariates is None
        (2, True)
        """
        rng = check_random_state(random_state)
        T = TIMES.size
        last = rng.uniform(self._max_time[0], self._max_time[1], size=n)
        obs_mask = TIMES[None, :] <= last[:, None] + 1e-9
        obs_mask[:, 0] = True
        n_obs = obs_mask.sum(axis=1)
        times = np.where(obs_mask, TIMES, TIMES[n_obs - 1][:, None])
        design = Padded(
            times,
            np.full((n, T, 1), np.nan),
            obs_mask,
            np.zeros((n, 0)),
            np.zeros((n, 0)),
            np.zeros((n, 0), dtype=bool),
        )
        return design, None

    def _predict(self, phi, design, covariates):
        times = np.ascontiguousarray(design.times, dtype=float)
        out = np.empty(times.shape)
        mrna_predict(np.ascontiguousarray(phi, dtype=float), times, out)
        return out[..., None]

    def _add_noise(self, pred, phi, rng):
        return self.error_model.add_noise(pred, phi[:, 5:], rng)

    def _simulate(self, phi, design, covariates, rng):
        times = np.ascontiguousarray(design.times, dtype=float)
        out = np.empty(times.shape)
        mrna_simulate(np.ascontiguousarray(phi, dtype=float), times, draw_seed(rng), out)
        if self._missing[1] > 0.0:
            n = phi.shape[0]
            rate = rng.uniform(self._missing[0], self._missing[1], size=(n, 1))
            out[rng.uniform(size=out.shape) < rate] = np.nan
        return out[..., None]

    def _log_likelihood(self, phi, padded, covariates):
        mask = padded.value_mask()[..., 0]
        values = np.where(mask, padded.values[..., 0], 0.0)
        out = mrna_loglik(
            np.ascontiguousarray(phi, dtype=float),
            np.ascontiguousarray(padded.times, dtype=float),
            values,
            mask,
            chunk_bounds(phi.shape[0]),
        )
        warn_nonfinite(out, self.name)
        return out

    def __repr__(self):
        return f"MRNATransfection(max_time={self.max_time!r}, missing_rate={self.missing_rate!r})"
