"""mRNA transfection, stochastic model: a chemical Langevin equation (8 parameters).

The SDE version of the Fröhlich et al. (2018) single-cell model used by
Arruda et al. (ICML 2024, repository Amortized-NLME-Models,
``models/froehlich_model_sde.py``): from ``t0`` on, mRNA ``m`` and protein
``p`` follow::

    dm = -delta m dt + sqrt(delta m) dW1,                 m(t0) = m0
    dp = (k m - gamma p) dt + sqrt(k m + gamma p) dW2,   p(t0) = 0

integrated by Euler–Maruyama with ``dt = 0.01`` h, both states floored at 0
after every step, as in the reference code. Observation (the reference's
measurement): ``y = log(scale p + offset) + sigma eps``, the grid values
interpolated linearly to the observation times (every 10 min from 1/6 h to
30 h, 180 points), ``y = log(offset)`` up to ``t0``. Parameters on the natural
log scale with the reference's prior N(mean, diag(var)), mean
``[-3, -3, -1, 5, 0, 0, 0, -1]``, variances ``[5, 5, 5, 5, 5, 2, 5, 2]``.

Unlike the reference code, which seeded the global generator inside the
compiled loop so that all simulations shared one Brownian path, every
individual draws its own noise (:mod:`sknlme.simulate._sde`).
"""

from __future__ import annotations

import numpy as np

from ..data._padded import fixed_design
from ..simulate._sde import draw_seeds, em_translation
from ._base import Model
from ._mrna import TIMES

PARAM_NAMES = (
    "log_delta",
    "log_gamma",
    "log_k",
    "log_m0",
    "log_scale",
    "log_t0",
    "log_offset",
    "log_sigma",
)
PRIOR_MEAN = np.array([-3.0, -3.0, -1.0, 5.0, 0.0, 0.0, 0.0, -1.0])
PRIOR_VAR = np.array([5.0, 5.0, 5.0, 5.0, 5.0, 2.0, 5.0, 2.0])


def simulate_sde_paths(phi, times, rng, dt=0.01):
    """Noise-free observable ``log(scale p + offset)`` of one SDE path per row.

    Parameters
    ----------
    phi : ndarray of shape (n, 8)
        Log-scale parameters in the order of :data:`PARAM_NAMES` (sigma unused).
    times : ndarray of shape (n, T)
        Observation times, non-decreasing per row.
    rng : numpy RandomState or Generator
        Draws one 64-bit stream seed per individual.
    dt : float, default=0.01
        Euler–Maruyama step (hours).

    Returns
    -------
    ndarray of shape (n, T)

    Examples
    --------
    >>> import numpy as np
    >>> phi = np.tile([-1.0, -2.0, 1.0, 5.0, 0.0, 0.0, 0.0, -1.0], (2, 1))
    >>> y = simulate_sde_paths(phi, np.tile([0.5, 1.0, 10.0], (2, 1)), np.random.RandomState(0))
    >>> y.shape, bool(y[0, 0] == 0.0), bool(np.all(y[0] != y[1]))  # own noise per path
    ((2, 3), True, False)
    """
    phi = np.asarray(phi, dtype=float)
    x = np.exp(phi[:, :7])
    out = np.empty(times.shape)
    seeds = draw_seeds(rng, phi.shape[0])
    em_translation(np.ascontiguousarray(x), seeds, np.ascontiguousarray(times), float(dt), out)
    return out


class MRNATransfectionSDE(Model):
    """Stochastic mRNA transfection model (Euler–Maruyama), 8 parameters.

    Parameters
    ----------
    dt : float, default=0.01
        Euler–Maruyama step in hours (the reference's value).

    Examples
    --------
    >>> from sknlme.models import MRNATransfectionSDE
    >>> model = MRNATransfectionSDE()
    >>> model.n_params, model.has_likelihood
    (8, False)
    >>> X, phi = model.simulate(2, random_state=0)
    >>> X["records"].iloc[0].values.shape
    (180, 1)
    """

    def __init__(self, dt=0.01):
        self.dt = dt
        super().__init__(
            PARAM_NAMES,
            PRIOR_MEAN,
            PRIOR_VAR,
            output_names=("log_fluorescence",),
            name="mrna-transfection-sde",
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
        >>> from sknlme.models import MRNATransfectionSDE
        >>> design, _ = MRNATransfectionSDE().sample_design(2)
        >>> design.times.shape
        (2, 180)
        """
        design = fixed_design(TIMES, n)
        return design, None

    def _simulate(self, phi, design, covariates, rng):
        dt = float(self.dt)
        if not dt > 0:
            raise ValueError(f"dt must be positive, got {self.dt}")
        if not np.all(np.isfinite(phi)):
            i, j = np.argwhere(~np.isfinite(phi))[0]
            raise ValueError(f"parameter {self.param_names[j]} of individual {i} is {phi[i, j]}")
        times = design.times
        order = None
        if np.any(np.diff(times, axis=1) < 0):
            order = np.argsort(times, axis=1, kind="stable")
            times = np.take_along_axis(times, order, axis=1)
        y = simulate_sde_paths(phi, times, rng, dt)
        if order is not None:
            unsorted = np.empty_like(y)
            np.put_along_axis(unsorted, order, y, axis=1)
            y = unsorted
        sigma = np.exp(phi[:, 7])
        y = y + sigma[:, None] * rng.standard_normal(y.shape)
        return y[..., None]
