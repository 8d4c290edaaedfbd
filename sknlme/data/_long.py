"""Conversion between NONMEM-style long tables and individuals tables.

A long table has one row per event: an observation (``EVID`` 0), a dose
(``EVID`` 1) or another event (``EVID`` 2), with columns ``ID``, ``TIME``,
``DV``, ``AMT``, ``EVID``, ``MDV``, ``CMT`` and covariates, the de-facto
standard of pharmacometrics. :func:`from_long` turns it into an individuals
table (one row per individual, see :func:`sknlme.data.make_individuals`);
:func:`to_long` goes back.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ._long_rows import (
    _MISSING,
    _UNSUPPORTED,
    _check_dose_rows_dv,
    _check_duplicate_doses,
    _check_duplicates,
    _check_unsupported,
    _covariates,
    _event_ids,
    _find_column,
    _output_codes,
)
from ._records import IndividualRecords, covariate_columns, make_individuals
from ._validation import _show, _where, check_ids, check_times, numeric_column, validate_individuals


# NONMEM dosing columns whose non-zero values would change what a dose means.
def from_long(
    df,
    *,
    id_col="ID",
    time_col="TIME",
    dv_col="DV",
    amt_col="AMT",
    evid_col="EVID",
    mdv_col="MDV",
    cmt_col="CMT",
    covariates=None,
    outputs=None,
):
    """Individuals table from a NONMEM-style long table.

    Parameters
    ----------
    df : DataFrame
        One row per event, grouped by ID and sorted by time within each ID.
        Not modified.
    id_col, time_col, dv_col, amt_col, evid_col, mdv_col, cmt_col : str
        Column names, matched case-insensitively. ``AMT``, ``EVID``, ``MDV``
        and ``CMT`` may be absent: without ``EVID``, rows with ``AMT > 0`` are
        doses and the others observations; without ``MDV``, an observation
        with missing ``DV`` is a missing value.
    covariates : list of str, default=None
        Covariate columns, each constant within an individual (name those the
        population model or the simulator uses). Other columns (``TAD``,
        NONMEM's extra columns) are not read: None reads none, with a
        warning that lists them.
    outputs : sequence or dict, default=None
        ``CMT`` values of the observed outputs in output order (or a dict
        mapping ``CMT`` value to output index). Default: sorted distinct
        ``CMT`` values of the observation rows.

    Returns
    -------
    X : DataFrame
        One row per individual in order of first appearance, indexed by the
        ID values (``"ID"``), with the covariates and a ``"records"`` column
        of :class:`IndividualRecords`. Observations of different outputs at
        the same time share one row of ``values``; ``NaN`` marks a missing
        value (``MDV`` 1 or missing ``DV``). ``EVID`` 2 rows make no record.

    Raises
    ------
    ValueError
        Naming ID, column, value and row: missing ID, non-numeric or negative
        or unsorted ``TIME``, non-numeric ``DV`` (e.g. ``'BLQ'``), dose with
        ``AMT <= 0``, unknown or reset ``EVID``, duplicate observation or
        dose row, individual without observations, time-varying covariate,
        and data NONMEM would read otherwise than they seem to say: IDs that
        differ only in type (``1`` and ``"1"``), a missing ``DV`` with
        ``MDV`` 0, a ``DV`` other than 0 on a dose row without ``MDV`` 1.

    Examples
    --------
    >>> import pandas as pd
    >>> from sknlme.data import from_long
    >>> df = pd.DataFrame({
    ...     "ID": [1, 1, 1, 2, 2, 2],
    ...     "TIME": [0.0, 1.0, 2.0, 0.0, 0.5, 3.0],
    ...     "DV": [None, 3.1, 2.0, None, 4.0, 1.5],
    ...     "AMT": [100, 0, 0, 120, 0, 0],
    ...     "WT": [70, 70, 70, 82, 82, 82]})
    >>> X = from_long(df, covariates=["WT"])
    >>> X["WT"].to_dict(), X.loc[1, "records"]
    ({1: 70, 2: 82}, IndividualRecords(n_obs=2, n_outputs=1, n_doses=1))
    >>> X.loc[2, "records"].times.tolist(), X.loc[2, "records"].dose_amounts.tolist()
    ([0.5, 3.0], [120.0])
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"df must be a pandas DataFrame, got {type(df).__name__}")
    if len(df) == 0:
        raise ValueError("long table has no rows")
    cols = {
        "id": _find_column(df, id_col, True),
        "time": _find_column(df, time_col, True),
        "dv": _find_column(df, dv_col, True),
        "amt": _find_column(df, amt_col, False),
        "evid": _find_column(df, evid_col, False),
        "mdv": _find_column(df, mdv_col, False),
        "cmt": _find_column(df, cmt_col, False),
    }
    ic = cols["id"]
    codes = check_ids(df, ic)
    times = numeric_column(df, cols["time"], id_col=ic, missing=_MISSING)
    check_times(df, times, codes, id_col=ic, time_col=cols["time"])
    _check_unsupported(df, ic)
    amt = None
    if cols["amt"] is not None:
        amt = numeric_column(df, cols["amt"], id_col=ic, missing=_MISSING)
    evid = _event_ids(df, cols, amt)
    dose, obs = evid == 1, evid == 0
    if dose.any():
        if amt is None:
            raise ValueError("long table has dose rows (EVID 1) but no AMT column")
        bad = dose & ~(amt > 0)
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"column {_show(cols['amt'])} has value {_show(df[cols['amt']].iloc[pos])} on a "
                "dose row "
                f"at {_where(df, pos, ic)}; dose amounts must be positive"
            )
    if amt is not None:
        stray = obs & (np.nan_to_num(amt) != 0)
        if stray.any():
            pos = int(np.flatnonzero(stray)[0])
            raise ValueError(
                f"column {_show(cols['amt'])} has value {_show(amt[pos])} on an observation row "
                "(EVID 0) "
                f"at {_where(df, pos, ic)}; a dose needs EVID 1"
            )
    dv = numeric_column(df, cols["dv"], id_col=ic, rows=obs, missing=_MISSING)
    mdv = None
    if cols["mdv"] is not None:
        mdv_given = numeric_column(df, cols["mdv"], id_col=ic, missing=_MISSING)
        mdv = np.where(np.isnan(mdv_given), 0.0, mdv_given)  # as NONMEM, a missing MDV reads 0
        unexplained = obs & (mdv_given == 0) & np.isnan(dv)
        if unexplained.any():
            pos = int(np.flatnonzero(unexplained)[0])
            raise ValueError(
                f"column {_show(cols['dv'])} is missing at {_where(df, pos, ic)} but "
                f"{_show(cols['mdv'])} is 0 (an observed value); set MDV 1 for a missing "
                "observation"
            )
        bad = obs & ~np.isin(mdv, [0, 1])
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"column {_show(cols['mdv'])} has value {_show(df[cols['mdv']].iloc[pos])} at "
                f"{_where(df, pos, ic)}; expected 0 or 1"
            )
        dv = np.where(mdv == 1, np.nan, dv)
    out, k = _output_codes(df, cols["cmt"], obs, outputs, ic)
    if dose.any():
        _check_dose_rows_dv(df, dose, cols["dv"], mdv, ic)
        _check_duplicate_doses(df, codes, times, dose, amt, cols["cmt"], ic)

    _check_duplicates(df, codes, times, obs, out, cols["cmt"], ic)
    bounds = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1], True])  # rows are contiguous
    first = bounds[:-1]
    ids = pd.Index(df[ic].iloc[first])
    records = []
    for c, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        o = lo + np.flatnonzero(obs[lo:hi])
        if len(o) == 0:
            raise ValueError(f"ID {_show(ids[c])} has no observation row (EVID 0)")
        t_unique, row_of = np.unique(times[o], return_inverse=True)
        values = np.full((len(t_unique), k), np.nan)
        values[row_of, out[o]] = dv[o]
        d = lo + np.flatnonzero(dose[lo:hi])
        records.append(IndividualRecords(t_unique, values, times[d], amt[d] if len(d) else []))

    reserved = {c for c in cols.values() if c is not None}
    unread = [
        c
        for c in df.columns
        if c not in reserved and not (isinstance(c, str) and c.upper() in _UNSUPPORTED)
    ]
    if covariates is None:
        if unread:
            warnings.warn(
                f"columns {unread} of the long table are not read: name the covariates to "
                f"keep, e.g. covariates={unread[:2]!r} (covariates=[] reads none, silently)",
                UserWarning,
                stacklevel=2,
            )
        covariates = []
    else:
        covariates = list(covariates)
        for name in covariates:
            if name not in df.columns:
                raise ValueError(f"covariate {_show(name)} is not a column of the long table")
    cov = _covariates(df, covariates, codes, first, ic)
    X = make_individuals(records, ids=ids, covariates=cov)
    validate_individuals(X, require_values=False)
    return X


def to_long(
    X,
    *,
    id_col="ID",
    time_col="TIME",
    dv_col="DV",
    amt_col="AMT",
    evid_col="EVID",
    mdv_col="MDV",
    cmt_col="CMT",
    outputs=None,
    dose_cmt=1,
):
    """NONMEM-style long table of an individuals table (inverse of :func:`from_long`).

    Parameters
    ----------
    X : DataFrame
        Individuals table. Not modified.
    id_col, time_col, dv_col, amt_col, evid_col, mdv_col, cmt_col : str
        Names of the columns written.
    outputs : sequence, default=None
        ``CMT`` value of each output; ``1..n_outputs`` by default.
    dose_cmt : int, default=1
        ``CMT`` value written on dose rows.

    Returns
    -------
    df : DataFrame
        Columns ``ID, TIME, DV, AMT, EVID, MDV, CMT`` then the covariates;
        one row per dose and per (time, output) pair, missing values as
        ``MDV`` 1 rows with ``DV`` NaN; sorted by time within each ID, doses
        before observations at equal times.

    Examples
    --------
    >>> from sknlme.data import IndividualRecords, make_individuals, to_long
    >>> X = make_individuals([IndividualRecords([0.0, 1.0], [1.0, 0.5], [0.0], [4.0])],
    ...                      covariates={"WT": [70.0]})
    >>> to_long(X)
       ID  TIME   DV  AMT  EVID  MDV  CMT    WT
    0   1   0.0  NaN  4.0     1    1    1  70.0
    1   1   0.0  1.0  0.0     0    0    1  70.0
    2   1   1.0  0.5  0.0     0    0    1  70.0
    """
    records = validate_individuals(X, require_values=False)
    k = records[0].n_outputs
    outputs = list(range(1, k + 1)) if outputs is None else list(outputs)
    if len(outputs) != k:
        raise ValueError(f"got {len(outputs)} CMT values in outputs for {k} outputs")
    names = [id_col, time_col, dv_col, amt_col, evid_col, mdv_col, cmt_col]
    covs = covariate_columns(X)
    clash = [c for c in covs if c in names]
    if clash:
        raise ValueError(f"covariate column(s) {clash} clash with the long-table columns")
    position, t, dv, amt, evid, cmt, order = [], [], [], [], [], [], []
    for i, rec in enumerate(records):
        nd, no = rec.n_doses, rec.n_obs * k
        position += [i] * (nd + no)
        t += [rec.dose_times, np.repeat(rec.times, k)]
        dv += [np.full(nd, np.nan), rec.values.ravel()]
        amt += [rec.dose_amounts, np.zeros(no)]
        evid += [np.ones(nd, int), np.zeros(no, int)]
        cmt += [np.full(nd, dose_cmt, dtype=object), np.tile(np.array(outputs, object), rec.n_obs)]
        order += [np.arange(nd), nd + np.arange(no)]
    position = np.asarray(position, dtype=int)
    t, dv, amt = np.concatenate(t), np.concatenate(dv), np.concatenate(amt)
    evid, cmt, order = np.concatenate(evid), np.concatenate(cmt), np.concatenate(order)
    # Stable sort: by individual, then time, then doses (EVID 1) before observations.
    sort = np.lexsort((order, -evid, t, position))
    position, t, dv, amt, evid = position[sort], t[sort], dv[sort], amt[sort], evid[sort]
    cmt = pd.Series(list(cmt[sort]))
    mdv = np.where((evid == 1) | np.isnan(dv), 1, 0)
    df = pd.DataFrame(
        {
            id_col: X.index.take(position),
            time_col: t,
            dv_col: dv,
            amt_col: amt,
            evid_col: evid,
            mdv_col: mdv,
            cmt_col: cmt,
        }
    )
    for name in covs:
        df[name] = X[name].iloc[position].reset_index(drop=True)
    return df
