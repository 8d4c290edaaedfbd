"""Individuals tables from wide arrays (one array per quantity)."""

from __future__ import annotations

import numpy as np

from ._records import IndividualRecords, make_individuals
from ._validation import _show, validate_individuals


def _per_individual(array, n, name):
    array = np.asarray(array, dtype=float)
    if array.ndim == 1:
        return np.broadcast_to(array, (n, array.shape[0]))
    if array.ndim != 2 or array.shape[0] != n:
        raise ValueError(f"{name} must have shape (n_timepoints,) or ({n}, ...), got {array.shape}")
    return array


def from_arrays(values, times, *, dose_times=None, dose_amounts=None, covariates=None, ids=None):
    """Individuals table from wide arrays.

    Parameters
    ----------
    values : array-like of shape (n_individuals, n_timepoints, n_outputs) or \
(n_individuals, n_timepoints)
        Observed values; ``NaN`` marks a missing value.
    times : array-like of shape (n_timepoints,) or (n_individuals, n_timepoints)
        Observation times, shared or per individual. A ``NaN`` time means
        no record (for individuals with fewer time points); its values must
        be ``NaN`` too.
    dose_times : array-like of shape (n_doses,) or (n_individuals, n_doses), default=None
        Dose times, shared or per individual.
    dose_amounts : array-like of shape (n_doses,) or (n_individuals, n_doses), default=None
        Dose amounts; entries that are ``NaN`` or 0 are padding (no dose).
    covariates : DataFrame or dict of array-like, default=None
        One value per individual.
    ids : array-like of shape (n_individuals,), default=None
        Identifiers; ``1..n`` when omitted.

    Returns
    -------
    X : DataFrame
        Individuals table (see :func:`sknlme.data.make_individuals`).

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.data import from_arrays
    >>> values = np.array([[1.0, 0.5, 0.2], [2.0, np.nan, np.nan]])
    >>> times = np.array([[0.5, 1.0, 2.0], [0.5, 4.0, np.nan]])
    >>> X = from_arrays(values, times, dose_times=[0.0], dose_amounts=[[4.0], [5.0]])
    >>> rec = X.loc[2, "records"]
    >>> rec.times.tolist(), rec.values.ravel().tolist(), rec.dose_amounts.tolist()
    ([0.5, 4.0], [2.0, nan], [5.0])
    """
    values = np.asarray(values, dtype=float)
    if values.ndim == 2:
        values = values[:, :, None]
    if values.ndim != 3:
        raise ValueError(
            f"values must have shape (n, n_timepoints[, n_outputs]), got {values.shape}"
        )
    n, n_time, _ = values.shape
    times = _per_individual(times, n, "times")
    if times.shape[1] != n_time:
        raise ValueError(f"times have {times.shape[1]} time points, values have {n_time}")
    if (dose_times is None) != (dose_amounts is None):
        raise ValueError("give both dose_times and dose_amounts, or neither")
    if dose_times is None:
        dose_times = dose_amounts = np.empty((n, 0))
    dose_times = _per_individual(dose_times, n, "dose_times")
    dose_amounts = _per_individual(dose_amounts, n, "dose_amounts")
    if dose_times.shape != dose_amounts.shape:
        raise ValueError(
            f"dose_times {dose_times.shape} and dose_amounts {dose_amounts.shape} differ in shape"
        )
    ids = np.arange(1, n + 1) if ids is None else np.asarray(ids)
    if ids.shape != (n,):
        raise ValueError(f"ids must have shape ({n},), got {ids.shape}")
    records = []
    for i in range(n):
        keep = ~np.isnan(times[i])
        stray = ~keep & ~np.all(np.isnan(values[i]), axis=1)
        if stray.any():
            j = int(np.flatnonzero(stray)[0])
            raise ValueError(
                f"individual {_show(ids[i])}: value at time point {j} has no time (times is NaN)"
            )
        real = ~(np.isnan(dose_amounts[i]) | (dose_amounts[i] == 0))
        timeless = real & np.isnan(dose_times[i])
        if timeless.any():
            j = int(np.flatnonzero(timeless)[0])
            raise ValueError(
                f"individual {_show(ids[i])}: dose {j} of amount {_show(dose_amounts[i, j])} "
                "has no time"
            )
        records.append(
            IndividualRecords(
                times[i, keep], values[i, keep], dose_times[i, real], dose_amounts[i, real]
            )
        )
    X = make_individuals(records, ids=ids, covariates=covariates)
    validate_individuals(X, require_values=False)
    return X
