"""Checks of long tables and individuals tables, with errors naming the culprit.

Every error raised here names the individual (``ID``), the column and the
offending value, and, for long tables, the row of the input (its index label),
so that a user can find and fix the record at fault.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._records import DOSE_EXTRAS, check_individuals


def _show(value):
    """``repr`` of a value, with NumPy scalars shown as plain Python ones."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def _where(frame, position, id_col=None):
    """Human-readable location of row ``position`` of ``frame``."""
    label = frame.index[position]
    name = frame.index.name or "row"
    text = f"{name} {_show(label)}"
    if id_col is not None:
        text = f"ID {_show(frame[id_col].iloc[position])} ({text})"
    return text


def numeric_column(frame, column, *, id_col=None, rows=None, missing=("",)):
    """Convert a column of a long table to float, naming any non-numeric entry.

    Parameters
    ----------
    frame : DataFrame
        The long table (not modified).
    column : str
        Column to convert.
    id_col : str, default=None
        ID column, used to name the individual in error messages.
    rows : array-like of bool, default=None
        Only these rows must be numeric; others become ``NaN`` when they are not.
    missing : tuple of str, default=("",)
        Strings read as missing values (``NaN``) besides ``NaN`` itself.

    Returns
    -------
    values : ndarray of float
        A new array; missing entries are ``NaN``.

    Raises
    ------
    ValueError
        If an entry (of ``rows``) is neither a number nor missing.

    Examples
    --------
    >>> import pandas as pd
    >>> from sknlme.data._validation import numeric_column
    >>> df = pd.DataFrame({"ID": [1, 1], "DV": ["1.5", "BLQ"]})
    >>> numeric_column(df, "DV", id_col="ID")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: column 'DV' has non-numeric value 'BLQ' at ID 1 (row 1)...
    """
    raw = frame[column]
    if pd.api.types.is_bool_dtype(raw.dtype):
        raise ValueError(f"column {_show(column)} is boolean, expected numbers")
    if pd.api.types.is_numeric_dtype(raw.dtype):
        return raw.to_numpy(dtype=float, na_value=np.nan)
    text = raw.astype(object)
    blank = text.map(lambda v: isinstance(v, str) and v.strip() in missing).to_numpy(bool)
    converted = pd.to_numeric(text.where(~blank, np.nan), errors="coerce")
    values = converted.to_numpy(dtype=float, na_value=np.nan)
    bad = np.isnan(values) & ~raw.isna().to_numpy() & ~blank
    if rows is not None:
        bad &= np.asarray(rows, dtype=bool)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"column {_show(column)} has non-numeric value {_show(raw.iloc[pos])} at "
            f"{_where(frame, pos, id_col)}; use NaN (or '.', or MDV=1) for a missing value "
            "and encode censored values (e.g. 'BLQ') as missing"
        )
    return values


def _id_text(value):
    """How an ID reads in a file: ``1``, ``1.0`` and ``"1"`` all read ``"1"``."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _check_ambiguous_ids(frame, ids, codes, uniques):
    """Refuse distinct ID values that read the same (``1`` and ``"1"`` in one column)."""
    if ids.dtype != object or len(uniques) < 2:
        return
    seen = {}
    for code, value in enumerate(uniques):
        text = _id_text(value)
        if text in seen:
            a, b = (int(np.argmax(codes == c)) for c in (seen[text], code))
            raise ValueError(
                f"IDs {_show(uniques[seen[text]])} ({_where(frame, a)}) and {_show(value)} "
                f"({_where(frame, b)}) are different values that read the same; make the ID "
                "column one type"
            )
        seen[text] = code


def check_ids(frame, id_col):
    """Check that no ID is missing and that each individual's rows are contiguous.

    Raises
    ------
    ValueError
        Naming the row with a missing ID, or the ID whose rows are split.
    """
    ids = frame[id_col]
    missing = ids.isna().to_numpy()
    if missing.any():
        pos = int(np.flatnonzero(missing)[0])
        raise ValueError(f"column {_show(id_col)} is missing (NaN) at {_where(frame, pos)}")
    codes, uniques = pd.factorize(ids)
    _check_ambiguous_ids(frame, ids, codes, uniques)
    starts = np.r_[True, codes[1:] != codes[:-1]]
    blocks = codes[starts]
    if len(np.unique(blocks)) != len(blocks):
        counts = np.bincount(blocks)
        code = int(np.flatnonzero(counts > 1)[0])
        positions = np.flatnonzero(starts & (codes == code))
        where = ", ".join(_where(frame, int(p)) for p in positions)
        raise ValueError(
            f"ID {_show(ids.iloc[positions[0]])} appears in separate blocks of rows (starting at "
            f"{where}); sort the table by {_show(id_col)} and time so each individual's rows are "
            "contiguous"
        )
    return codes


def check_times(frame, times, codes, *, id_col, time_col):
    """Check times are present, finite, non-negative and sorted within individuals."""
    bad = ~np.isfinite(times)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"column {_show(time_col)} has invalid value {_show(frame[time_col].iloc[pos])} at "
            f"{_where(frame, pos, id_col)}; every row needs a finite time"
        )
    negative = times < 0
    if negative.any():
        pos = int(np.flatnonzero(negative)[0])
        raise ValueError(
            f"column {_show(time_col)} has negative value {_show(times[pos])} at "
            f"{_where(frame, pos, id_col)}"
        )
    same = codes[1:] == codes[:-1]
    back = same & (times[1:] < times[:-1])
    if back.any():
        pos = int(np.flatnonzero(back)[0]) + 1
        raise ValueError(
            f"column {_show(time_col)} is not sorted within individual: {_show(times[pos])} at "
            f"{_where(frame, pos, id_col)} comes after {_show(times[pos - 1])}; NONMEM data must "
            "be sorted by time within each ID"
        )


def _fail(ident, message):
    raise ValueError(f"individual {_show(ident)}: {message}")


def _check_one(ident, rec, require_values):
    times = rec.times
    if rec.n_obs == 0:
        _fail(ident, "has no observation record")
    if not np.all(np.isfinite(times)):
        _fail(ident, f"observation time {_show(times[~np.isfinite(times)][0])} is not finite")
    if np.any(times < 0):
        _fail(ident, f"observation time {_show(times[times < 0][0])} is negative")
    steps = np.diff(times)
    if np.any(steps <= 0):
        i = int(np.flatnonzero(steps <= 0)[0])
        _fail(
            ident,
            f"observation times must be strictly increasing, got {_show(times[i])} then "
            f"{_show(times[i + 1])}",
        )
    if np.any(np.isinf(rec.values)):
        _fail(ident, "has an infinite observed value")
    if require_values and np.all(np.isnan(rec.values)):
        _fail(ident, "has no observed value (all values are missing)")
    dose_t, dose_a = rec.dose_times, rec.dose_amounts
    if not np.all(np.isfinite(dose_t)) or np.any(dose_t < 0):
        bad = dose_t[~(np.isfinite(dose_t) & (dose_t >= 0))][0]
        _fail(ident, f"dose time {_show(bad)} is not a finite non-negative number")
    if np.any(np.diff(dose_t) < 0):
        _fail(ident, f"dose times must be sorted, got {dose_t.tolist()}")
    good = np.isfinite(dose_a) & ((dose_a > 0) | (rec.dose_reset & (dose_a == 0)))
    if not np.all(good):
        _fail(ident, f"dose amount {_show(dose_a[~good][0])} is not a positive number")
    _check_dose_extras(ident, rec)


def _check_dose_extras(ident, rec):
    """Infusion durations, steady-state flags and intervals, censored values of one individual."""
    dur, ss, ii = rec.dose_durations, rec.dose_ss, rec.dose_ii
    bad = ~(np.isfinite(dur) & (dur >= 0))
    if bad.any():
        _fail(ident, f"infusion duration {_show(dur[bad][0])} is not a finite non-negative number")
    if np.any(rec.dose_cmt < 0):
        _fail(ident, f"dose compartment {_show(rec.dose_cmt[rec.dose_cmt < 0][0])} is negative")
    if not np.all(np.isin(ss, (0, 1, 2))):
        _fail(ident, f"steady-state flag {_show(ss[~np.isin(ss, (0, 1, 2))][0])} is not 0, 1 or 2")
    bad = (ss > 0) & ~(np.isfinite(ii) & (ii > 0))
    if bad.any():
        _fail(
            ident,
            f"steady-state dose at time {_show(rec.dose_times[bad][0])} has interdose interval "
            f"{_show(ii[bad][0])}; SS needs II > 0",
        )
    short = (ss > 0) & (dur > ii)
    if short.any():
        _fail(
            ident,
            f"steady-state infusion at time {_show(rec.dose_times[short][0])} lasts "
            f"{_show(dur[short][0])}, longer than its interval {_show(ii[short][0])}",
        )
    blank = rec.censored & np.isnan(rec.values)
    if blank.any():
        _fail(ident, "has a censored observation without a limit (its value is missing)")


def _sorted_within(x, owner, strict):
    same = owner[1:] == owner[:-1]
    step = np.diff(x)
    return not np.any(same & ((step <= 0) if strict else (step < 0)))


def _all_good(records, require_values):
    """Vectorized version of :func:`_check_one` over all records (True if all pass)."""
    n = len(records)
    n_obs = np.array([r.n_obs for r in records])
    n_dose = np.array([r.n_doses for r in records])
    if np.any(n_obs == 0):
        return False
    times = np.concatenate([r.times for r in records])
    values = np.concatenate([r.values for r in records])
    dose_t = np.concatenate([r.dose_times for r in records])
    dose_a = np.concatenate([r.dose_amounts for r in records])
    owner, dose_owner = np.repeat(np.arange(n), n_obs), np.repeat(np.arange(n), n_dose)
    good = (
        np.all(np.isfinite(times) & (times >= 0))
        and _sorted_within(times, owner, strict=True)
        and not np.any(np.isinf(values))
        and np.all(np.isfinite(dose_t) & (dose_t >= 0))
        and _sorted_within(dose_t, dose_owner, strict=False)
        and _extras_good(records, values, dose_a)
    )
    if good and require_values:
        observed = (~np.isnan(values)).any(axis=1).astype(int)
        good = bool(np.all(np.add.reduceat(observed, np.cumsum(n_obs) - n_obs) > 0))
    return bool(good)


def _extras_good(records, values, dose_a):
    """Vectorized :func:`_check_dose_extras` and dose amounts (0 only on resets)."""
    ex = {name: np.concatenate([getattr(r, name) for r in records]) for name in DOSE_EXTRAS}
    dur, ss, ii = ex["dose_durations"], ex["dose_ss"], ex["dose_ii"]
    censored = np.concatenate([r.censored for r in records])
    return bool(
        np.all(np.isfinite(dose_a) & ((dose_a > 0) | (ex["dose_reset"] & (dose_a == 0))))
        and np.all(np.isfinite(dur) & (dur >= 0))
        and np.all(ex["dose_cmt"] >= 0)
        and np.all(np.isin(ss, (0, 1, 2)))
        and np.all((ss == 0) | (np.isfinite(ii) & (ii > 0) & (dur <= ii)))
        and not np.any(censored & np.isnan(values))
    )


def validate_individuals(X, *, n_outputs=None, require_values=True, name="X"):
    """Check an individuals table before estimation and return its records.

    Parameters
    ----------
    X : DataFrame
        Individuals table (see :func:`sknlme.data.make_individuals`).
    n_outputs : int, default=None
        Required number of outputs (e.g. the model's); when None, all
        individuals must merely agree.
    require_values : bool, default=True
        Whether each individual needs at least one observed (non-missing) value.
    name : str, default="X"
        Name of the table in error messages.

    Returns
    -------
    records : list of IndividualRecords
        In row order.

    Raises
    ------
    TypeError, ValueError
        Naming the individual (its ``ID``) and the value at fault: missing or
        duplicated IDs, unsorted, negative or non-finite times, no
        observation, non-positive dose amounts, inconsistent outputs.

    Examples
    --------
    >>> from sknlme.data import IndividualRecords, make_individuals, validate_individuals
    >>> X = make_individuals([IndividualRecords([0.0, 1.0], [1.0, 0.5])], ids=[7])
    >>> len(validate_individuals(X))
    1
    >>> bad = make_individuals([IndividualRecords([1.0, 0.0], [1.0, 0.5])], ids=[7])
    >>> validate_individuals(bad)
    Traceback (most recent call last):
    ...
    ValueError: individual 7: observation times must be strictly increasing, got 1.0 then 0.0
    """
    records = check_individuals(X, name=name)
    if len(records) == 0:
        raise ValueError(f"{name} has no individuals")
    index = X.index
    if index.hasnans:
        raise ValueError(f"{name} has a missing (NaN) ID")
    if index.has_duplicates:
        raise ValueError(f"{name}: ID {_show(index[index.duplicated()][0])} appears more than once")
    expected = records[0].n_outputs if n_outputs is None else n_outputs
    for ident, rec in zip(index, records, strict=True):
        if rec.n_outputs != expected:
            _fail(ident, f"has {rec.n_outputs} outputs, expected {expected}")
    if not _all_good(records, require_values):  # then find and name the culprit
        for ident, rec in zip(index, records, strict=True):
            _check_one(ident, rec, require_values)
    return records
