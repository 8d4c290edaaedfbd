"""Linear one-, two- and three-compartment PK models (NONMEM TRANS4 parameters)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state

from ..data import Padded, to_padded
from ..data._records import covariate_columns
from ..simulate._closed_form import chunk_bounds
from ..simulate._linear_pk import N_PK, linear_pk_loglik, linear_pk_predict, linear_pk_simulate
from ..simulate._random import draw_seed
from ._base import Model
from ._error import make_error_model, warn_nonfinite

_LOG = np.log
# prior (mean, SD) on the model scale, for doses in mg, volumes in L, times in h
_PRIOR = {
    "log_CL": (_LOG(5.0), 1.0),  # CL 5 L/h, 0.7 to 37 within 2 SD
    "log_V1": (_LOG(50.0), 1.0),  # V1 50 L, 7 to 370
    "log_Q": (_LOG(5.0), 1.0),
    "log_V2": (_LOG(100.0), 1.0),
    "log_Q3": (_LOG(2.0), 1.0),
    "log_V3": (_LOG(200.0), 1.0),
    "log_ka": (_LOG(1.0), 1.0),  # absorption half-time 5 min to 5 h within 2 SD
    "log_lag": (_LOG(0.5), 0.7),  # lag 7 min to 2 h
    "logit_F": (1.0, 1.0),  # F 0.73, 0.27 to 0.95
}
_ERROR_PRIOR = {
    "additive": ([_LOG(0.1)], [1.0]),  # sigma 0.1 mg/L, x/÷ 2.7
    "proportional": ([_LOG(0.15)], [0.5]),  # 15 %
    "combined": ([_LOG(0.05), _LOG(0.1)], [1.0, 0.5]),
}
_COLUMN = {"log_CL": 0, "log_V1": 1, "log_Q": 2, "log_V2": 3, "log_Q3": 4, "log_V3": 5}
_COLUMN |= {"log_ka": 6, "log_lag": 7}
# (time, amount, concentration) exponents: volume = amount / concentration
_UNITS = {"log_CL": (-1, 1, -1), "log_Q": (-1, 1, -1), "log_Q3": (-1, 1, -1)}
_UNITS |= {"log_V1": (0, 1, -1), "log_V2": (0, 1, -1), "log_V3": (0, 1, -1)}
_UNITS |= {"log_ka": (-1, 0, 0), "log_lag": (1, 0, 0), "log_sigma": (0, 0, 1), "log_a": (0, 0, 1)}
_FORMS = ("power", "linear", "exp", "categorical")
_WORDS = {1: "one", 2: "two", 3: "three"}
FEATURES = frozenset({"infusion", "compartment", "steady_state", "reset", "censoring"})


def _effect_prior(param, form):
    if form == "power":  # allometry: 3/4 for clearances, 1 for volumes
        return (0.75 if param in ("log_CL", "log_Q", "log_Q3") else 1.0), 0.25
    return 0.0, 0.5


class LinearCompartmental(Model):
    """Linear mammillary PK model with one, two or three compartments.

    Closed forms (sums of exponentials from the eigenvalues of the rate
    matrix, see :mod:`sknlme.simulate._linear_pk`) superposed over doses; one
    class covers every model, chosen by ``n_compartments`` and ``route``. The
    output is the central concentration ``A1 / V1``.

    Parameters (NONMEM TRANS4, log scale): ``log_CL``, ``log_V1``, then
    ``log_Q``, ``log_V2`` (two and three compartments), ``log_Q3``,
    ``log_V3`` (three), ``log_ka`` (oral), ``log_lag`` (``lag=True``),
    ``logit_F`` (``bioavailability=True``, ``F = 1 / (1 + e^{-logit_F})``),
    then one parameter per estimated covariate effect, then the error
    parameters. Lag and F act on depot doses only.

    Dose records: an ``"iv"`` model takes boluses and zero-order infusions
    into the central compartment (``dose_cmt`` 0 or 1); an ``"oral"`` model
    puts doses with ``dose_cmt`` 0 or 1 into the depot (boluses only) and
    those with ``dose_cmt`` 2 into the central compartment (bolus or
    infusion), as NONMEM's ADVAN2/4/12. Steady state (``SS`` 1 and 2,
    ``dose_ii > 0``, infusions no longer than ``II``), resets and M3
    censoring are exact. An observation at the time of an event is taken
    before it; events must be in time order.

    Default prior (mg, L, h; mean, SD on the model scale): CL 5 L/h, V1 50 L,
    Q 5 L/h, V2 100 L, Q3 2 L/h, V3 200 L, ka 1/h, all with log SD 1; lag
    0.5 h (SD 0.7), logit F 1 (SD 1); additive sigma 0.1 mg/L (SD 1),
    proportional 15 % (SD 0.5), combined a 0.05 mg/L (SD 1) and b 10 % (SD
    0.5). Estimated power exponents: 0.75 for clearances, 1 for volumes (SD
    0.25); other effects 0 (SD 0.5).

    Parameters
    ----------
    n_compartments : {1, 2, 3}, default=1
    route : {"iv", "oral"}, default="iv"
    lag : bool, default=False
        Estimate an absorption lag time (oral only).
    bioavailability : bool, default=False
        Estimate the bioavailability of depot doses (oral only).
    error : {"additive", "proportional", "combined"} or ErrorModel, default="additive"
    covariate_model : dict, default=None
        Structural covariate effects ``{param: [(covariate, form, ref, value), ...]}``
        multiplying the parameter: ``"power"`` ``(c / ref)^value``,
        ``"linear"`` ``1 + value (c - ref)``, ``"exp"`` ``exp(value (c -
        ref))``, ``"categorical"`` ``exp(value [c == ref])``. ``value=None``
        estimates it: a parameter ``"{param}_{covariate}"`` (e.g.
        ``log_CL_WT``). Covariates are read from the individuals table.
    prior_mean, prior_cov : array-like, default=None
        Prior mean and variances (or covariance); the defaults above when None.
    design : DataFrame, default=None
        Individuals table whose designs :meth:`sample_design` resamples; when
        None, broad designs are drawn (see :meth:`sample_design`).

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.models import LinearCompartmental
    >>> model = LinearCompartmental(2, "iv", covariate_model={
    ...     "log_CL": [("WT", "power", 70.0, 0.75)], "log_V1": [("WT", "power", 70.0, None)]})
    >>> model.param_names
    ('log_CL', 'log_V1', 'log_Q', 'log_V2', 'log_V1_WT', 'log_sigma')
    >>> X, phi = model.simulate(4, random_state=0)
    >>> model.log_likelihood(phi.to_numpy()[:, None, :], X).shape
    (4, 1)
    """

    dosing_features = FEATURES
    exact_additive_error = True  # see sknlme.models.additive_log_sd

    def __init__(
        self,
        n_compartments=1,
        route="iv",
        lag=False,
        bioavailability=False,
        error="additive",
        covariate_model=None,
        prior_mean=None,
        prior_cov=None,
        design=None,
    ):
        if n_compartments not in (1, 2, 3):
            raise ValueError(f"n_compartments must be 1, 2 or 3, got {n_compartments!r}")
        if route not in ("iv", "oral"):
            raise ValueError(f"route must be 'iv' or 'oral', got {route!r}")
        if route == "iv" and (lag or bioavailability):
            raise ValueError("lag and bioavailability act on depot doses: use route='oral'")
        self.n_compartments, self.route = n_compartments, route
        self.lag, self.bioavailability = lag, bioavailability
        self.error, self.covariate_model, self.design = error, covariate_model, design
        self.error_model = make_error_model(error)
        pk = ["log_CL", "log_V1", "log_Q", "log_V2", "log_Q3", "log_V3"][: 2 * n_compartments]
        pk += ["log_ka"] * (route == "oral") + ["log_lag"] * lag + ["logit_F"] * bioavailability
        self._effects, effect_names, effect_prior, covs = self._parse_covariates(pk)
        mean = [_PRIOR[p][0] for p in pk] + [m for m, _ in effect_prior]
        sd = [_PRIOR[p][1] for p in pk] + [s for _, s in effect_prior]
        e_mean, e_sd = _ERROR_PRIOR.get(self.error_model.kind, ([0.0], [1.0]))
        names = tuple(pk) + tuple(effect_names) + self.error_model.param_names
        self.pk_params = tuple(pk)
        name = f"{_WORDS[n_compartments]}-compartment-{route}"
        super().__init__(
            names,
            np.r_[mean, e_mean] if prior_mean is None else prior_mean,
            np.square(np.r_[sd, e_sd]) if prior_cov is None else prior_cov,
            output_names=("concentration",),
            covariate_names=covs,
            name="one-compartment-oral-trans4" if name == "one-compartment-oral" else name,
            error_params=self.error_model.param_names,
        )
        if design is not None:
            if not isinstance(design, pd.DataFrame):
                raise TypeError(f"design must be an individuals DataFrame, got {type(design)}")
            self._design_padded = to_padded(design, n_outputs=1)
            self._design_covariates = design[covariate_columns(design)]

    def _parse_covariates(self, pk):
        """``(effects, estimated names, their priors, covariates)`` of ``covariate_model``."""
        effects, names, priors, covs = [], [], [], []
        for param, terms in (self.covariate_model or {}).items():
            if param not in pk:
                raise ValueError(f"covariate_model names {param!r}, not a parameter of {pk}")
            for term in terms:
                if len(term) != 4 or term[1] not in _FORMS:
                    raise ValueError(
                        f"covariate effect {term!r} on {param}: expected (covariate, form, "
                        f"ref, value) with form one of {_FORMS}"
                    )
                cov, form, ref, value = term
                if cov not in covs:
                    covs.append(cov)
                slot = None
                if value is None:
                    slot = len(pk) + len(names)
                    names.append(f"{param}_{cov}")
                    priors.append(_effect_prior(param, form))
                effects.append((pk.index(param), covs.index(cov), form, float(ref), value, slot))
        return effects, names, priors, tuple(covs)

    @property
    def unit_exponents(self):
        """Exponents of every parameter in (time, amount, concentration), shape (n_params, 3).

        Clearances ``time^-1 amount concentration^-1``, volumes ``amount
        concentration^-1``, ``ka`` ``time^-1``, lag ``time``, additive error
        ``concentration``; ``logit_F``, covariate effects and the proportional
        ``log_b`` are unit-free.

        Examples
        --------
        >>> from sknlme.models import LinearCompartmental
        >>> LinearCompartmental(1, "oral").unit_exponents.tolist()
        [[-1.0, 1.0, -1.0], [0.0, 1.0, -1.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
        """
        return np.array([_UNITS.get(p, (0, 0, 0)) for p in self.param_names], dtype=float)

    # ----------------------------------------------------------- parameters
    def _pk(self, phi, cov):
        """Natural-scale ``CL, V1, Q, V2, Q3, V3, ka, tlag, F`` (..., 9) of ``phi`` (n, ..., d)."""
        logs = phi[..., : len(self.pk_params)].copy()
        cov = cov.reshape((cov.shape[0],) + (1,) * (phi.ndim - 2) + (cov.shape[1],))
        for j, c, form, ref, value, slot in self._effects:
            v = phi[..., slot] if slot is not None else value
            x = cov[..., c]
            if form == "power":
                logs[..., j] += v * np.log(x / ref)
            elif form == "linear":
                logs[..., j] += np.log(1.0 + v * (x - ref))
            elif form == "exp":
                logs[..., j] += v * (x - ref)
            else:
                logs[..., j] += v * (x == ref)
        pk = np.zeros(phi.shape[:-1] + (N_PK,))
        pk[..., 8] = 1.0
        for j, p in enumerate(self.pk_params):
            if p == "logit_F":
                pk[..., 8] = 1.0 / (1.0 + np.exp(-logs[..., j]))
            else:
                pk[..., _COLUMN[p]] = np.exp(logs[..., j])
        return np.ascontiguousarray(pk)

    def _doses(self, padded):
        """Kernel dose arrays, validated (naming the individual's row and value)."""
        mask = padded.dose_mask
        cmt = np.where(mask, padded.dose_cmt, 0)
        dur = np.where(mask, padded.dose_durations, 0.0)
        ss = np.where(mask, padded.dose_ss, 0)
        ii = np.where(mask, padded.dose_ii, 0.0)
        ordered = np.where(mask, padded.dose_times, np.inf)
        allowed = (0, 1, 2) if self.route == "oral" else (0, 1)
        checks = [
            (~np.isin(cmt, allowed), "dose_cmt", cmt, f"{self.name} doses go to CMT {allowed}"),
            ((ss > 0) & ~(ii > 0), "dose_ii", ii, "a steady-state dose needs II > 0"),
            ((ss > 0) & (dur > ii), "dose_durations", dur, "a steady-state infusion over II"),
            (np.pad(ordered[:, 1:] < ordered[:, :-1], ((0, 0), (1, 0))),
             "dose_times", padded.dose_times, "events must be in time order"),
        ]  # fmt: skip
        route = ((cmt < 2) & mask).astype(np.int64) if self.route == "oral" else 0 * cmt
        checks.append(((route == 1) & (dur > 0), "dose_durations", dur, "infusion into the depot"))
        for bad, what, arr, why in checks:
            if bad.any():
                i, d = np.argwhere(bad)[0]
                raise ValueError(f"individual at row {i}: {what} {arr[i, d].item()!r} ({why})")
        amt = np.where(mask, padded.dose_amounts, 0.0)
        c = np.ascontiguousarray
        return (
            c(padded.dose_times, dtype=float), c(amt, dtype=float), c(dur, dtype=float),
            c(route), c(ss, dtype=np.int64), c(ii, dtype=float), c(padded.dose_reset & mask),
        )  # fmt: skip

    # ----------------------------------------------------------- simulation
    def _predict(self, phi, design, covariates):
        pk = self._pk(phi, self.covariate_array(covariates, phi.shape[0]))
        times = np.ascontiguousarray(design.times, dtype=float)
        out = np.empty(times.shape)
        linear_pk_predict(pk, self.n_compartments, times, *self._doses(design), out)
        return out[..., None]

    def _simulate(self, phi, design, covariates, rng):
        pk = self._pk(phi, self.covariate_array(covariates, phi.shape[0]))
        times = np.ascontiguousarray(design.times, dtype=float)
        out = np.empty(times.shape)
        err = np.ascontiguousarray(phi[:, phi.shape[1] - self.error_model.n_params :])
        doses = self._doses(design)
        code, seed = self.error_model.code, draw_seed(rng)
        linear_pk_simulate(pk, err, self.n_compartments, times, *doses, code, seed, out)
        return out[..., None]

    def _log_likelihood(self, phi, padded, covariates):
        pk = self._pk(phi, self.covariate_array(covariates, phi.shape[0]))
        err = np.ascontiguousarray(phi[..., phi.shape[2] - self.error_model.n_params :])
        mask = np.ascontiguousarray(padded.value_mask()[..., 0])
        values = np.ascontiguousarray(np.where(mask, padded.values[..., 0], 0.0))
        cens = np.ascontiguousarray(padded.censored[..., 0] & mask)
        times = np.ascontiguousarray(padded.times, dtype=float)
        out = linear_pk_loglik(
            pk, err, self.n_compartments, times, *self._doses(padded), values, mask, cens,
            self.error_model.code, chunk_bounds(phi.shape[0]),
        )  # fmt: skip
        warn_nonfinite(out, f"{self.name}, {self.error_model.kind} error")
        return out

    # ---------------------------------------------------------------- design
    def sample_design(self, n, random_state=None):
        """Sample ``n`` broad designs for training.

        Per individual: 1-20 doses every ``II`` in {6, 8, 12, 24} h of one
        amount, log-uniform in 10-1000 mg (IV: half the individuals get
        infusions over U(0.25, min(4, II)) h, the others boluses; oral: into
        the depot); 20 % start at steady state (``SS`` 1); 1-30 sample times,
        uniform over the dosing span plus two intervals. Covariates of
        ``covariate_model`` are drawn around their reference (log-normal, SD
        0.25; categorical: the reference level with probability 1/2). With
        ``design=`` the given designs are resampled with their covariates.

        Parameters
        ----------
        n : int
        random_state : int, RandomState or None

        Returns
        -------
        design : Padded
        covariates : DataFrame or None

        Examples
        --------
        >>> from sknlme.models import LinearCompartmental
        >>> design, cov = LinearCompartmental(2).sample_design(3, random_state=0)
        >>> design.n_individuals, cov is None
        (3, True)
        """
        rng = check_random_state(random_state)
        if self.design is not None:
            rows = rng.randint(0, self._design_padded.n_individuals, size=n)
            design = self._design_padded.take(rows)
            design.values[:] = np.nan
            cov = self._design_covariates.iloc[rows].reset_index(drop=True)
            return design, (cov if cov.shape[1] else None)
        n_doses = rng.randint(1, 21, size=n)
        n_obs = rng.randint(1, 31, size=n)
        ii = rng.choice([6.0, 8.0, 12.0, 24.0], size=n)
        amount = np.exp(rng.uniform(np.log(10.0), np.log(1000.0), size=n))
        D, T = n_doses.max(), n_obs.max()
        dose_mask = np.arange(D)[None, :] < n_doses[:, None]
        dose_times = np.where(dose_mask, np.arange(D)[None, :] * ii[:, None], 0.0)
        infuse = (rng.uniform(size=n) < 0.5) & (self.route == "iv")
        dur = np.where(infuse, rng.uniform(0.25, 1.0, size=n) * np.minimum(4.0, ii), 0.0)
        ss = np.zeros((n, D), np.int64)
        ss[:, 0] = rng.uniform(size=n) < 0.2
        span = (n_doses + 1) * ii
        times = np.sort(rng.uniform(0.0, 1.0, size=(n, T)), axis=1) * span[:, None]
        obs_mask = np.arange(T)[None, :] < n_obs[:, None]
        last = np.take_along_axis(times, (n_obs - 1)[:, None], axis=1)
        times = np.where(obs_mask, times, last)  # padding repeats the last real time
        design = Padded(
            times,
            np.full((n, T, 1), np.nan),
            obs_mask,
            dose_times,
            np.where(dose_mask, amount[:, None], 0.0),
            dose_mask,
            dose_durations=np.where(dose_mask, dur[:, None], 0.0),
            dose_ss=ss,
            dose_ii=np.where(ss > 0, ii[:, None], 0.0),
        )
        if not self.covariate_names:
            return design, None
        cov = {}
        for _, c, form, ref, _, _ in self._effects:
            name = self.covariate_names[c]
            if form == "categorical":
                cov[name] = np.where(rng.uniform(size=n) < 0.5, ref, ref + 1.0)
            else:
                cov[name] = ref * np.exp(0.25 * rng.standard_normal(n))
        return design, pd.DataFrame(cov)

    def __repr__(self):
        return (
            f"LinearCompartmental(n_compartments={self.n_compartments}, route={self.route!r}, "
            f"error={self.error_model.kind!r})"
        )
