"""User-defined models from a plain vectorised function."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state

from ..data._padded import Padded
from ._base import Model
from ._error import make_error_model
from ._function_args import (
    DOSE_FIELDS,
    covariate_dict,
    declared_keywords,
    dosing_features,
    function_name,
    keyword_values,
    resolve_function,
    unit_exponent_array,
)

# cap on the floats of one prediction block in the log-likelihood (about 160 MB)
_BLOCK = 20_000_000


class FunctionModel(Model):
    """A model defined by a vectorised prediction function and an error model.

    Parameters
    ----------
    func : callable
        ``func(phi, times, **declared) -> pred`` with ``phi`` of shape
        (n, n_struct) (the structural parameters, on the model's scale) and
        ``times`` of shape (n, T); returns noise-free predictions of shape
        (n, T) or (n, T, n_outputs). Plain numpy or a numba function both work.
        Each individual's dose events reach the parameters it declares among
        ``dose_times``, ``dose_amounts``, ``dose_mask``, ``dose_durations``,
        ``dose_cmt``, ``dose_ss``, ``dose_ii`` and ``dose_reset`` (arrays of
        shape (n, D); padded doses have amount 0), and its ``covariates`` (a
        dict name -> array of shape (n,), the ``covariates`` named below) a
        parameter ``covariates``. Data using infusions, compartments, steady
        state or resets are refused unless ``func`` takes the field. Without
        such parameters and with ``doses`` given, it is called as
        ``func(phi, times, dose_times, dose_amounts)`` (the older form).
    param_names : sequence of str
        Names of the structural parameters; the error parameters (e.g.
        ``log_sigma``) are appended to form :attr:`param_names`.
    prior_mean : array-like of shape (n_params,)
        Prior mean of all parameters, structural then error.
    prior_cov : array-like of shape (n_params,) or (n_params, n_params)
        Prior variances or covariance of all parameters.
    times : array-like of shape (T,), default=None
        Observation times of sampled designs (one fixed design); not needed
        with ``design``.
    error : {"additive", "proportional", "combined"} or ErrorModel, default="additive"
        Residual error model, applied to every output.
    output_names : sequence of str, default=("y",)
    doses : (array-like, array-like), default=None
        Dose times and amounts of the fixed sampled design.
    name : str, default=None
        Model name; ``func.__name__`` when None.
    covariates : sequence of str, default=()
        Individual covariates ``func`` receives (columns of the individuals
        table, e.g. ``("WT",)``); they become :attr:`covariate_names`.
    design : DataFrame, default=None
        An individuals table (e.g. the study to fit) whose designs (times,
        doses and covariates) :meth:`sample_design` resamples with
        replacement, so that a posterior trained on the model covers the study.
    unit_exponents : array-like of shape (n_params, 3) or dict, default=None
        Each parameter's exponents in (time, amount, value) units where ``func``
        is equivariant (linear PK: clearance ``[-1, 1, -1]``, volume ``[0, 1, -1]``,
        additive SD ``[0, 0, 1]``); a dict by name, others 0. Enables
        ``rescale_units=True`` (see :attr:`Model.unit_exponents`).

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

    A bolus model whose elimination rate scales with body weight, trained on
    the designs of a study (two individuals here):

    >>> from sknlme.data import IndividualRecords, make_individuals
    >>> def bolus(phi, t, dose_times, dose_amounts, covariates):
    ...     k = np.exp(phi[:, :1]) * covariates["WT"][:, None] / 70
    ...     dt = t[:, :, None] - dose_times[:, None, :]
    ...     decay = np.exp(-k[..., None] * np.maximum(dt, 0)) * (dt >= 0)
    ...     return (dose_amounts[:, None, :] * decay).sum(-1)
    >>> study = make_individuals(
    ...     [IndividualRecords([1.0, 4.0], [4.1, 2.0], [0.0], [5.0]),
    ...      IndividualRecords([2.0], [1.5], [0.0], [3.0])], covariates={"WT": [70.0, 140.0]})
    >>> model = FunctionModel(bolus, ["log_k"], [-1.0, -2.0], [0.1, 0.1],
    ...                       covariates=["WT"], design=study)
    >>> design, cov = model.sample_design(4, random_state=0)
    >>> design.n_individuals, sorted(set(cov["WT"]))
    (4, [70.0, 140.0])
    >>> X, phi = model.simulate(design=study, random_state=0)
    >>> X["records"].iloc[0].times.tolist()
    [1.0, 4.0]
    """

    exact_additive_error = True  # see sknlme.models.additive_log_sd

    def __init__(
        self,
        func,
        param_names,
        prior_mean,
        prior_cov,
        times=None,
        error="additive",
        output_names=("y",),
        doses=None,
        name=None,
        covariates=(),
        design=None,
        unit_exponents=None,
    ):
        if not callable(func):
            raise TypeError(f"func must be callable, got {type(func).__name__}")
        self.func = func
        self.error = error
        self.error_model = make_error_model(error)
        self.times = times
        self.doses = doses
        self.covariates = covariates
        self.design = design
        if times is not None:
            t = np.asarray(times, dtype=float).reshape(-1)
            if t.size == 0 or np.any(np.diff(t) <= 0) or t[0] < 0 or not np.isfinite(t).all():
                raise ValueError(f"times must be non-negative and strictly increasing, got {times}")
            self._times = t
        if doses is not None:
            dt, da = (np.asarray(a, dtype=float).reshape(-1) for a in doses)
            if dt.shape != da.shape or np.any(da <= 0):
                raise ValueError("doses must be (times, amounts) of equal length, amounts > 0")
            self._doses = (dt, da)
        self._keywords = declared_keywords(func)
        if covariates and "covariates" not in self._keywords:
            raise TypeError(
                f"func {getattr(func, '__name__', func)!r} must take a 'covariates' argument "
                f"to receive covariates {list(covariates)}"
            )
        # the older positional dose form: doses given, no dose keywords declared
        self._positional_doses = doses is not None and not any(
            k in DOSE_FIELDS for k in self._keywords
        )
        self.dosing_features = dosing_features(self._keywords)
        self.n_struct = len(param_names)
        super().__init__(
            tuple(param_names) + self.error_model.param_names,
            prior_mean,
            prior_cov,
            output_names=output_names,
            covariate_names=tuple(covariates),
            name=name or getattr(func, "__name__", "function-model"),
            error_params=self.error_model.param_names,
        )
        self._unit_exponents = unit_exponent_array(unit_exponents, self.param_names)
        if design is not None:
            if times is not None or doses is not None:
                raise ValueError(
                    "give design= (the study's designs) or times=/doses= (one fixed design), "
                    "not both"
                )
            if not isinstance(design, pd.DataFrame):
                raise TypeError(f"design must be an individuals DataFrame, got {type(design)}")
            study = self.prepare(design, require_values=False)
            self._design_padded = study.padded
            self._design_covariates = pd.DataFrame(
                study.simulator_covariates, columns=list(self.covariate_names)
            )

    @property
    def _takes_doses(self):
        return self._positional_doses or any(k in DOSE_FIELDS for k in self._keywords)

    def sample_design(self, n, random_state=None):
        """Designs of ``n`` individuals: the study's resampled, or the fixed one.

        With ``design`` the study's individuals are drawn with replacement,
        with their covariates; otherwise every individual is observed at
        :attr:`times`, with :attr:`doses`.

        Parameters
        ----------
        n : int
            Number of designs.
        random_state : int, RandomState or None
            Controls the resampling (unused for the fixed design).

        Returns
        -------
        design : Padded
            Observation times and doses (values all NaN).
        covariates : DataFrame or None
            The declared covariates, one row per individual (None without).

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
        if self.design is not None:
            rows = check_random_state(random_state).randint(
                0, self._design_padded.n_individuals, size=n
            )
            design = self._design_padded.take(rows)
            design = design.replace(values=np.full(design.values.shape, np.nan))
            cov = self._design_covariates.iloc[rows].reset_index(drop=True)
            return design, (cov if cov.shape[1] else None)
        if self.times is None:
            raise ValueError(
                f"{self.name} has no designs to sample: give times= (one fixed design) or "
                "design= (a study whose designs are resampled)"
            )
        if self.covariate_names:
            raise ValueError(
                f"{self.name} needs covariates {list(self.covariate_names)}: give design= "
                "(a study with those columns) to sample designs"
            )
        T, k = self._times.size, self.n_outputs
        dt, da = self._doses if self.doses is not None else (np.empty(0), np.empty(0))
        design = Padded(
            np.broadcast_to(self._times, (n, T)).copy(),
            np.full((n, T, k), np.nan),
            np.ones((n, T), dtype=bool),
            np.broadcast_to(dt, (n, dt.size)).copy(),
            np.broadcast_to(da, (n, da.size)).copy(),
            np.ones((n, dt.size), dtype=bool),
        )
        return design, None

    def _predict(self, phi, design, covariates):
        n, T = design.times.shape
        if not self._takes_doses and design.dose_mask.any():
            i = int(np.flatnonzero(design.dose_mask.any(1))[0])
            raise ValueError(
                f"{self.name}: the individual at row {i} has doses but func takes none; "
                "declare parameters dose_times and dose_amounts to receive them"
            )
        args = (np.ascontiguousarray(phi[:, : self.n_struct]), design.times)
        if self._positional_doses:
            args += (design.dose_times, np.where(design.dose_mask, design.dose_amounts, 0.0))
            kwargs = {}
        else:
            cov = covariate_dict(self, covariates, n) if "covariates" in self._keywords else None
            kwargs = keyword_values(self._keywords, design, cov)
        pred = np.asarray(self.func(*args, **kwargs), dtype=float)
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
        cov = None
        if self.covariate_names:
            cov = np.stack(list(covariate_dict(self, covariates, n).values()), axis=1)
        step = max(1, _BLOCK // max(1, K * T * k))
        for lo in range(0, n, step):
            sl = slice(lo, min(n, lo + step))
            m = sl.stop - lo
            design = padded.take(np.repeat(np.arange(lo, sl.stop), K))
            flat = phi[sl].reshape(m * K, d)
            rows_cov = None if cov is None else np.repeat(cov[sl], K, axis=0)
            pred = self._predict(flat, design, rows_cov).reshape(m, K, T, k)
            out[sl] = self.error_model.log_likelihood(
                pred, phi[sl, :, self.n_struct :], padded.values[sl], mask[sl]
            )
        return out

    def get_config(self):
        """The constructor arguments, ``func`` by its importable name (for saving).

        A subclass with its own constructor gives the attributes named like its
        arguments. The ``design`` is not part of it: a saved posterior records its training
        designs' range, and a rebuilt model needs no designs to fit data.

        Returns
        -------
        dict

        Raises
        ------
        TypeError
            When ``func`` cannot be imported by name (a lambda, a nested function
            or one defined in ``__main__``), saying so.

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.models import FunctionModel
        >>> model = FunctionModel(np.exp, [], [0.0], [1.0], times=[1.0])
        >>> config = model.get_config()
        >>> config["func"], config["times"]
        ('numpy:exp', [1.0])
        >>> FunctionModel.from_config(config).param_names
        ('log_sigma',)
        """
        if type(self).__init__ is not FunctionModel.__init__:
            # a subclass's own constructor arguments, read as attributes (its func is fixed)
            names = list(inspect.signature(type(self).__init__).parameters)[1:]
            return {n: getattr(self, n) for n in names if n != "design"}
        doses = None if self.doses is None else [np.asarray(d, float).tolist() for d in self.doses]
        return {
            "func": function_name(self.func),
            "param_names": list(self.param_names[: self.n_struct]),
            "prior_mean": self.prior_mean.tolist(),
            "prior_cov": self.prior_cov.tolist(),
            "times": None if self.times is None else self._times.tolist(),
            "error": self.error if isinstance(self.error, str) else self.error_model.kind,
            "output_names": list(self.output_names),
            "doses": doses,
            "name": self.name,
            "covariates": list(self.covariate_names),
            "unit_exponents": None if (u := self._unit_exponents) is None else u.tolist(),
        }

    @classmethod
    def from_config(cls, config):
        """The model of :meth:`get_config` output (``func`` imported by name).

        Parameters
        ----------
        config : dict

        Returns
        -------
        FunctionModel

        Examples
        --------
        >>> from sknlme.models import FunctionModel
        >>> config = {"func": "numpy:exp", "param_names": [], "prior_mean": [0.0],
        ...           "prior_cov": [1.0], "times": [1.0, 2.0]}
        >>> FunctionModel.from_config(config).name
        'exp'
        """
        config = dict(config)
        if cls.__init__ is not FunctionModel.__init__:
            return cls(**config)
        func = config.pop("func")
        if isinstance(func, str):
            func = resolve_function(func)
        return cls(func, **config)

    @property
    def unit_exponents(self):
        """The ``unit_exponents`` given, as an array (n_params, 3), or None.

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.models import FunctionModel
        >>> FunctionModel(np.exp, ["log_k"], [0.0, 0.0], [1.0, 1.0], times=[1.0],
        ...               unit_exponents={"log_k": [-1, 0, 0]}).unit_exponents.tolist()
        [[-1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
        """
        return self._unit_exponents

    def __repr__(self):
        return f"FunctionModel({self.name!r}, error={self.error_model.kind!r})"
