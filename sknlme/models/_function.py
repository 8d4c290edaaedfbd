"""User-defined models from a plain vectorised function."""

from __future__ import annotations

import warnings

import numpy as np

from ..data._padded import Padded
from ._base import Model
from ._error import make_error_model

# cap on the floats of one prediction block in the log-likelihood (about 160 MB)
_BLOCK = 20_000_000


class FunctionModel(Model):
    """A model defined by a vectorised prediction function and an error model.

    Parameters
    ----------
    func : callable
        ``func(phi, times) -> pred`` with ``phi`` of shape (n, n_struct) (the
        structural parameters, on the model's scale) and ``times`` of shape
        (n, T); returns noise-free predictions of shape (n, T) or
        (n, T, n_outputs). With ``doses`` given it is called as
        ``func(phi, times, dose_times, dose_amounts)`` with dose arrays of
        shape (n, D) (padded doses have amount 0). Plain numpy or a numba
        function both work.
    param_names : sequence of str
        Names of the structural parameters; the error parameters (e.g.
        ``log_sigma``) are appended to form :attr:`param_names`.
    prior_mean : array-like of shape (n_params,)
        Prior mean of all parameters, structural then error.
    prior_cov : array-like of shape (n_params,) or (n_params, n_params)
        Prior variances or covariance of all parameters.
    times : array-like of shape (T,)
        Observation times of sampled designs.
    error : {"additive", "proportional", "combined"} or ErrorModel, default="additive"
        Residual error model, applied to every output.
    output_names : sequence of str, default=("y",)
    doses : (array-like, array-like), default=None
        Dose times and amounts of sampled designs; see ``func``.
    name : str, default=None
        Model name; ``func.__name__`` when None.

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.models import FunctionModel
    >>> def decay(phi, t):  # y = y0 exp(-k t), parameters on log scale
    ...     return np.exp(phi[:, :1] - np.exp(phi[:, 1:2]) * t)
    >>> model = FunctionModel(decay, ["log_y0", "log_k"], prior_mean=[0.0, -1.0, -2.0],
    ...                       prior_cov=[0.5, 0.5, 0.1], times=np.linspace(0, 5, 6))
    >>> model.param_names
    ('log_y0', 'log_k', 'log_sigma')
    >>> X, phi = model.simulate(4, random_state=0)
    >>> model.log_likelihood(phi.to_numpy()[:, None, :], X).shape
    (4, 1)
    """

    def __init__(
        self,
        func,
        param_names,
        prior_mean,
        prior_cov,
        times,
        error="additive",
        output_names=("y",),
        doses=None,
        name=None,
    ):
        if not callable(func):
            raise TypeError(f"func must be callable, got {type(func).__name__}")
        self.func = func
        self.error = error
        self.error_model = make_error_model(error)
        self.times = np.asarray(times, dtype=float).reshape(-1)
        if self.times.size == 0 or np.any(np.diff(self.times) <= 0) or self.times[0] < 0:
            raise ValueError(f"times must be non-negative and strictly increasing, got {times}")
        self.doses = doses
        if doses is not None:
            dt, da = (np.asarray(a, dtype=float).reshape(-1) for a in doses)
            if dt.shape != da.shape or np.any(da <= 0):
                raise ValueError("doses must be (times, amounts) of equal length, amounts > 0")
            self._doses = (dt, da)
        self.n_struct = len(param_names)
        super().__init__(
            tuple(param_names) + self.error_model.param_names,
            prior_mean,
            prior_cov,
            output_names=output_names,
            name=name or getattr(func, "__name__", "function-model"),
            error_params=self.error_model.param_names,
        )

    def sample_design(self, n, random_state=None):
        """Every individual is observed at :attr:`times`, with :attr:`doses`.

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
        covariates : None

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.models import FunctionModel
        >>> model = FunctionModel(lambda phi, t: phi[:, :1] + 0 * t, ["a"], [0.0, -1.0],
        ...                       [1.0, 0.1], times=[0.0, 1.0, 2.0])
        >>> design, _ = model.sample_design(3)
        >>> design.times.shape
        (3, 3)
        """
        T, k = self.times.size, self.n_outputs
        dt, da = self._doses if self.doses is not None else (np.empty(0), np.empty(0))
        design = Padded(
            np.broadcast_to(self.times, (n, T)).copy(),
            np.full((n, T, k), np.nan),
            np.ones((n, T), dtype=bool),
            np.broadcast_to(dt, (n, dt.size)).copy(),
            np.broadcast_to(da, (n, da.size)).copy(),
            np.ones((n, dt.size), dtype=bool),
        )
        return design, None

    def _predict(self, phi, design, covariates):
        n, T = design.times.shape
        args = (np.ascontiguousarray(phi[:, : self.n_struct]), design.times)
        if self.doses is not None:
            args += (design.dose_times, np.where(design.dose_mask, design.dose_amounts, 0.0))
        pred = np.asarray(self.func(*args), dtype=float)
        if pred.ndim == 2:
            pred = pred[..., None]
        if pred.shape != (n, T, self.n_outputs):
            raise ValueError(
                f"{self.name}: func returned shape {pred.shape}, expected ({n}, {T}) or "
                f"({n}, {T}, {self.n_outputs})"
            )
        bad = ~np.isfinite(pred) & design.obs_mask[..., None]
        if bad.any():
            i = int(np.argwhere(bad)[0][0])
            warnings.warn(
                f"{self.name}: {int(bad.sum())} non-finite prediction(s), first for the "
                f"individual at row {i} with parameters {phi[i].tolist()}",
                RuntimeWarning,
                stacklevel=3,
            )
        return pred

    def _add_noise(self, pred, phi, rng):
        return self.error_model.add_noise(pred, phi[:, self.n_struct :], rng)

    def _log_likelihood(self, phi, padded, covariates):
        n, K, d = phi.shape
        T, k = padded.times.shape[1], self.n_outputs
        mask = np.broadcast_to(padded.value_mask(), padded.values.shape)
        out = np.empty((n, K))
        step = max(1, _BLOCK // max(1, K * T * k))
        for lo in range(0, n, step):
            sl = slice(lo, min(n, lo + step))
            m = sl.stop - lo
            design = padded.take(np.repeat(np.arange(lo, sl.stop), K))
            flat = phi[sl].reshape(m * K, d)
            pred = self._predict(flat, design, None).reshape(m, K, T, k)
            out[sl] = self.error_model.log_likelihood(
                pred, phi[sl, :, self.n_struct :], padded.values[sl], mask[sl]
            )
        return out

    def __repr__(self):
        return f"FunctionModel({self.name!r}, error={self.error_model.kind!r})"
