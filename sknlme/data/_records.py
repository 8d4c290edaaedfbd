"""Per-individual records and the individuals table.

The scikit-learn sample of sknlme is the *individual*. An individuals table is
a :class:`pandas.DataFrame` with one row per individual, indexed by ``ID``,
whose covariates are ordinary columns and whose observations and dose events
sit together, as one :class:`IndividualRecords` object, in the column
``"records"``. Splitters (``KFold``), ``ColumnTransformer`` with
``remainder="passthrough"`` and ``GridSearchCV`` move those objects around
untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

RECORDS_COLUMN = "records"
ID_NAME = "ID"

# per-dose arrays beyond time and amount, and their dtypes (defaults: all zero)
DOSE_EXTRAS = {
    "dose_durations": float,
    "dose_cmt": np.int64,
    "dose_ss": np.int64,
    "dose_ii": float,
    "dose_reset": bool,
}


def dosing_features_of(durations, cmt, ss, reset, censored):
    """Names of the dosing features that non-default entries of these arrays use."""
    used = {
        "infusion": np.any(np.asarray(durations) > 0),
        "compartment": np.any(np.asarray(cmt) != 0),
        "steady_state": np.any(np.asarray(ss) != 0),
        "reset": np.any(np.asarray(reset)),
        "censoring": np.any(np.asarray(censored)),
    }
    return frozenset(name for name, flag in used.items() if flag)


def _as_readonly(array, dtype, ndim, name):
    array = np.array(array, dtype=dtype, copy=True, ndmin=1)
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {array.shape}")
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False, repr=False)
class IndividualRecords:
    """Observations and dose events of one individual.

    Parameters
    ----------
    times : array-like of shape (n_obs,)
        Observation times, sorted ascending, non-negative, unique.
    values : array-like of shape (n_obs, n_outputs) or (n_obs,)
        Observed values; ``NaN`` marks a missing value.
    dose_times : array-like of shape (n_doses,), default=()
        Times of dose events.
    dose_amounts : array-like of shape (n_doses,), default=()
        Dose amounts, all positive (0 only for a reset-only event, NONMEM's
        ``EVID`` 3).
    dose_durations : array-like of shape (n_doses,), default=None
        Zero-order input durations (NONMEM ``AMT / RATE`` or ``DUR``); 0, the
        default, is a bolus.
    dose_cmt : array-like of int of shape (n_doses,), default=None
        Compartment that receives each dose (NONMEM ``CMT``); 0, the default,
        is the model's own dose compartment.
    dose_ss : array-like of int of shape (n_doses,), default=None
        Steady state (NONMEM ``SS``): 0 none, 1 the system is at steady state of
        this dose repeated every ``dose_ii`` (earlier doses dropped), 2 the
        steady state is added to the state.
    dose_ii : array-like of shape (n_doses,), default=None
        Interdose interval of steady-state doses (0 elsewhere).
    dose_reset : array-like of bool of shape (n_doses,), default=None
        The system is reset to its initial state at this event's time, before
        its dose (NONMEM ``EVID`` 3 and 4).
    censored : array-like of bool of shape (n_obs, n_outputs), default=None
        True where the value is a limit of quantification and the observation
        lies below it (NONMEM ``BLQ``/``CENS``, Beal's M3).

    Notes
    -----
    Models say which of these dosing features they simulate
    (:attr:`~sknlme.models.Model.dosing_features`) and refuse data with others.

    Examples
    --------
    >>> from sknlme.data import IndividualRecords
    >>> rec = IndividualRecords([0.0, 1.0, 2.0], [1.0, 0.5, 0.25], [0.0], [4.0])
    >>> rec
    IndividualRecords(n_obs=3, n_outputs=1, n_doses=1)
    >>> rec.values.shape
    (3, 1)
    """

    times: np.ndarray
    values: np.ndarray
    dose_times: np.ndarray = field(default_factory=lambda: np.empty(0))
    dose_amounts: np.ndarray = field(default_factory=lambda: np.empty(0))
    dose_durations: np.ndarray | None = None
    dose_cmt: np.ndarray | None = None
    dose_ss: np.ndarray | None = None
    dose_ii: np.ndarray | None = None
    dose_reset: np.ndarray | None = None
    censored: np.ndarray | None = None

    def __post_init__(self):
        times = _as_readonly(self.times, float, 1, "times")
        values = np.array(self.values, dtype=float, copy=True)
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2 or values.shape[0] != times.shape[0]:
            raise ValueError(
                f"values must have shape (n_obs, n_outputs) with n_obs={times.shape[0]}, "
                f"got {values.shape}"
            )
        values.setflags(write=False)
        dose_times = _as_readonly(self.dose_times, float, 1, "dose_times")
        dose_amounts = _as_readonly(self.dose_amounts, float, 1, "dose_amounts")
        if dose_times.shape != dose_amounts.shape:
            raise ValueError("dose_times and dose_amounts must have the same length")
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "dose_times", dose_times)
        object.__setattr__(self, "dose_amounts", dose_amounts)
        n_doses = dose_times.shape[0]
        for name, dtype in DOSE_EXTRAS.items():
            given = getattr(self, name)
            array = np.zeros(n_doses, dtype) if given is None else given
            array = _as_readonly(array, dtype, 1, name)
            if array.shape != (n_doses,):
                raise ValueError(f"{name} must have length {n_doses}, got {array.shape[0]}")
            object.__setattr__(self, name, array)
        censored = np.zeros(values.shape, bool) if self.censored is None else self.censored
        censored = np.array(censored, dtype=bool, copy=True)
        if censored.ndim == 1 and values.shape[1] == 1:
            censored = censored[:, None]
        if censored.shape != values.shape:
            raise ValueError(f"censored must have shape {values.shape}, got {censored.shape}")
        censored.setflags(write=False)
        object.__setattr__(self, "censored", censored)

    @property
    def n_obs(self):
        """Number of observation time points."""
        return self.times.shape[0]

    @property
    def n_outputs(self):
        """Number of observed outputs."""
        return self.values.shape[1]

    @property
    def n_doses(self):
        """Number of dose events."""
        return self.dose_times.shape[0]

    def __repr__(self):
        return (
            f"IndividualRecords(n_obs={self.n_obs}, n_outputs={self.n_outputs}, "
            f"n_doses={self.n_doses})"
        )

    def __eq__(self, other):
        if not isinstance(other, IndividualRecords):
            return NotImplemented
        return all(
            a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
            for a, b in zip(self._arrays(), other._arrays(), strict=True)
        )

    __hash__ = None

    @property
    def dosing_features(self):
        """The dosing features these records use, as a frozenset of names.

        ``"infusion"`` (a duration), ``"compartment"`` (a ``CMT``),
        ``"steady_state"``, ``"reset"``, ``"censoring"``.

        Examples
        --------
        >>> from sknlme.data import IndividualRecords
        >>> rec = IndividualRecords([1.0, 2.0], [1.0, 0.5], [0.0], [4.0], dose_durations=[0.5])
        >>> sorted(rec.dosing_features)
        ['infusion']
        """
        return dosing_features_of(
            self.dose_durations, self.dose_cmt, self.dose_ss, self.dose_reset, self.censored
        )

    @classmethod
    def _trusted(cls, times, values, dose_times, dose_amounts, extras=None, censored=None):
        """Build from already validated, read-only arrays (no copies)."""
        rec = object.__new__(cls)
        object.__setattr__(rec, "times", times)
        object.__setattr__(rec, "values", values)
        object.__setattr__(rec, "dose_times", dose_times)
        object.__setattr__(rec, "dose_amounts", dose_amounts)
        for name, dtype in DOSE_EXTRAS.items():
            if extras is None:
                array = np.zeros(dose_times.shape[0], dtype)
                array.setflags(write=False)
            else:
                array = extras[name]
            object.__setattr__(rec, name, array)
        if censored is None:
            censored = np.zeros(values.shape, bool)
            censored.setflags(write=False)
        object.__setattr__(rec, "censored", censored)
        return rec

    def _arrays(self):
        extras = tuple(getattr(self, name) for name in DOSE_EXTRAS)
        return (self.times, self.values, self.dose_times, self.dose_amounts, *extras, self.censored)


def make_individuals(records, ids=None, covariates=None):
    """Build an individuals table from per-individual records.

    Parameters
    ----------
    records : sequence of IndividualRecords
        One entry per individual.
    ids : array-like of shape (n_individuals,), default=None
        Identifiers; ``1..n`` when omitted.
    covariates : DataFrame or dict of array-like, default=None
        Covariate columns, one value per individual (row order as ``records``).

    Returns
    -------
    X : DataFrame
        One row per individual, index named ``"ID"``, covariate columns
        followed by the ``"records"`` column.

    Examples
    --------
    >>> from sknlme.data import IndividualRecords, make_individuals
    >>> rec = IndividualRecords([0.0, 1.0], [1.0, 0.5])
    >>> X = make_individuals([rec, rec], covariates={"WT": [70.0, 80.0]})
    >>> list(X.columns), X.index.name
    (['WT', 'records'], 'ID')
    """
    records = list(records)
    for i, rec in enumerate(records):
        if not isinstance(rec, IndividualRecords):
            raise TypeError(f"records[{i}] is {type(rec).__name__}, not IndividualRecords")
    n = len(records)
    if ids is None:
        ids = np.arange(1, n + 1)
    index = pd.Index(np.asarray(ids), name=ID_NAME)
    if len(index) != n:
        raise ValueError(f"got {len(index)} ids for {n} individuals")
    if index.has_duplicates:
        dup = index[index.duplicated()].tolist()[0]  # a plain Python value, not np.int64(3)
        raise ValueError(f"ID {dup!r} appears more than once")
    frame = pd.DataFrame(index=index)
    if covariates is not None:
        cov = pd.DataFrame(covariates).copy()
        if len(cov) != n:
            raise ValueError(f"covariates have {len(cov)} rows for {n} individuals")
        if RECORDS_COLUMN in cov.columns:
            raise ValueError(f"'{RECORDS_COLUMN}' is reserved and cannot be a covariate")
        for column in cov.columns:
            frame[column] = cov[column].to_numpy()
    column = np.empty(n, dtype=object)
    column[:] = records
    frame[RECORDS_COLUMN] = column
    return frame


def check_individuals(X, *, name="X"):
    """Check that ``X`` is an individuals table and return its records column.

    Parameters
    ----------
    X : DataFrame
        An individuals table as made by :func:`make_individuals`.
    name : str, default="X"
        Name used in error messages.

    Returns
    -------
    records : list of IndividualRecords

    Raises
    ------
    TypeError, ValueError
        Naming the row whose records are not :class:`IndividualRecords`.

    Examples
    --------
    >>> from sknlme.data import IndividualRecords, check_individuals, make_individuals
    >>> X = make_individuals([IndividualRecords([0, 1], [1, 2])], ids=[5])
    >>> [rec.times.tolist() for rec in check_individuals(X)]
    [[0.0, 1.0]]
    """
    if not isinstance(X, pd.DataFrame):
        raise TypeError(
            f"{name} must be an individuals DataFrame (one row per individual with a "
            f"'{RECORDS_COLUMN}' column), got {type(X).__name__}; see sknlme.data.from_long"
        )
    if RECORDS_COLUMN not in X.columns:
        raise ValueError(
            f"{name} has no '{RECORDS_COLUMN}' column; build it with "
            "sknlme.data.from_long, read_nonmem, from_arrays or make_individuals"
        )
    records = list(X[RECORDS_COLUMN])
    for ident, rec in zip(X.index, records, strict=True):
        if not isinstance(rec, IndividualRecords):
            raise TypeError(
                f"{name}: individual {ident!r} has a '{RECORDS_COLUMN}' entry of type "
                f"{type(rec).__name__}, not IndividualRecords"
            )
    return records


def covariate_columns(X):
    """Names of the covariate columns of an individuals table.

    Parameters
    ----------
    X : DataFrame
        An individuals table.

    Returns
    -------
    list of str
        Every column but the records column, in table order.

    Examples
    --------
    >>> from sknlme.data import IndividualRecords, covariate_columns, make_individuals
    >>> X = make_individuals([IndividualRecords([0], [1])], covariates={"WT": [70.0]})
    >>> covariate_columns(X)
    ['WT']
    """
    return [c for c in X.columns if c != RECORDS_COLUMN]
