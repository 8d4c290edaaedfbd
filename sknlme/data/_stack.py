"""Padded arrays from per-individual records, and back to an individuals table."""

from __future__ import annotations

import numpy as np

from ._padded import Padded
from ._records import DOSE_EXTRAS, check_individuals, make_individuals

__all__ = ["from_padded", "pad_records", "to_padded"]


def _pad_rows(rows, width, fill, dtype):
    out = np.full((len(rows), width), fill, dtype=dtype)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def pad_records(records, *, n_outputs=None):
    """Stack a sequence of :class:`IndividualRecords` into :class:`Padded` arrays.

    Parameters
    ----------
    records : sequence of IndividualRecords
    n_outputs : int, default=None
        Required number of outputs; inferred from the records when None.

    Returns
    -------
    Padded

    Examples
    --------
    >>> from sknlme.data import IndividualRecords, pad_records
    >>> p = pad_records([IndividualRecords([0, 1, 2], [1, 2, 3]), IndividualRecords([0], [3])])
    >>> p.times.shape, p.obs_mask.sum(axis=1).tolist()
    ((2, 3), [3, 1])
    """
    records = list(records)
    if not records:
        raise ValueError("no individuals")
    outputs = {rec.n_outputs for rec in records}
    if n_outputs is None:
        if len(outputs) != 1:
            raise ValueError(f"individuals have different numbers of outputs: {sorted(outputs)}")
        n_outputs = outputs.pop()
    n = len(records)
    n_time = max(rec.n_obs for rec in records)
    n_dose = max(rec.n_doses for rec in records)
    times = np.zeros((n, n_time))
    values = np.full((n, n_time, n_outputs), np.nan)
    obs_mask = np.zeros((n, n_time), dtype=bool)
    for i, rec in enumerate(records):
        if rec.n_outputs != n_outputs:
            raise ValueError(f"individual {i} has {rec.n_outputs} outputs, expected {n_outputs}")
        k = rec.n_obs
        times[i, :k] = rec.times
        if k:
            times[i, k:] = rec.times[-1]
        values[i, :k] = rec.values
        obs_mask[i, :k] = True
    dose_times = _pad_rows([r.dose_times for r in records], n_dose, 0.0, float)
    dose_amounts = _pad_rows([r.dose_amounts for r in records], n_dose, 0.0, float)
    dose_mask = _pad_rows([np.ones(r.n_doses, bool) for r in records], n_dose, False, bool)
    extras, censored = {}, None
    if any(rec.dosing_features for rec in records):
        for name, dtype in DOSE_EXTRAS.items():
            extras[name] = _pad_rows([getattr(r, name) for r in records], n_dose, 0, dtype)
        censored = np.zeros(values.shape, bool)
        for i, rec in enumerate(records):
            censored[i, : rec.n_obs] = rec.censored
    return Padded(
        times, values, obs_mask, dose_times, dose_amounts, dose_mask, **extras, censored=censored
    )


def to_padded(X, *, n_outputs=None):
    """Padded arrays of an individuals table (row order kept).

    Examples
    --------
    >>> from sknlme.data import IndividualRecords, make_individuals, to_padded
    >>> X = make_individuals([IndividualRecords([0, 1], [1, 2]), IndividualRecords([0], [3])])
    >>> p = to_padded(X)
    >>> p.times.shape, p.obs_mask.tolist()
    ((2, 2), [[True, True], [True, False]])
    """
    return pad_records(check_individuals(X), n_outputs=n_outputs)


def from_padded(padded, ids=None, covariates=None):
    """Individuals table from :class:`Padded` arrays (inverse of :func:`to_padded`).

    Examples
    --------
    >>> from sknlme.data import fixed_design, from_padded
    >>> X = from_padded(fixed_design([1.0, 2.0], 3), ids=["a", "b", "c"])
    >>> X.index.tolist(), list(X.columns)
    (['a', 'b', 'c'], ['records'])
    """
    return make_individuals(padded.to_records(), ids=ids, covariates=covariates)
