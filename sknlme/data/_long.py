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

from ._censoring import censor, read_limits
from ._events import dose_items_of, expand_doses, read_dose_items, used_items
from ._long_rows import (
    _MISSING,
    _check_dose_rows_dv,
    _check_duplicate_doses,
    _check_duplicates,
    _covariates,
    _event_ids,
    _find_column,
    _output_codes,
)
from ._records import IndividualRecords, covariate_columns, make_individuals
from ._validation import _show, _where, check_ids, check_times, numeric_column, validate_individuals


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
    rate_col="RATE",
    dur_col="DUR",
    addl_col="ADDL",
    ii_col="II",
    ss_col="SS",
    cens_col="CENS",
    lloq_col="LLOQ",
    limit_col="LIMIT",
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
    rate_col, dur_col, addl_col, ii_col, ss_col : str
        Dose-event columns, matched case-insensitively, each optional and read
        on dose rows only (blank there reads 0). ``RATE > 0`` is a zero-order
        infusion lasting ``AMT / RATE``; a ``DUR`` value gives the duration
        directly (alone or with ``RATE`` -2, NONMEM's modelled duration with
        ``D1 = DUR``); ``RATE`` -1 and other -2 are refused. ``ADDL`` doses
        are expanded: ``ADDL`` more copies of the dose every ``II`` after it,
        cancelled from the time of a later ``SS`` 1 dose or reset event, as in
        NONMEM. ``SS`` 1 or 2 with ``II > 0`` is kept in ``dose_ss`` and
        ``dose_ii`` for the model to compute the steady state. ``CMT`` on a
        dose row is its ``dose_cmt`` (0 or blank: the model's default).
        ``EVID`` 3 is a reset (amount 0, ``dose_reset``), ``EVID`` 4 a reset
        and dose.
    cens_col, lloq_col, limit_col : str
        Censoring columns, optional, matched case-insensitively. ``CENS`` (or,
        without one, a ``BLQ`` column) = 1 marks an observation below the
        limit held in ``DV`` (or in ``LLOQ`` when that column gives one);
        with an ``LLOQ`` column, an observation whose ``DV`` is below it, is
        the text ``"BLQ"`` (``"BQL"``, ``"BLOQ"``, ``"<LLOQ"``), or is missing
        with ``MDV`` 0, is censored at ``LLOQ``. A censored value is its
        limit, flagged in ``censored``. ``CENS`` -1 (above a limit) and a
        finite ``LIMIT`` (interval censoring) are refused.
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
        ``AMT <= 0``, unknown ``EVID``, a dose-event item NONMEM would
        refuse or that needs a modelled rate (named with its column), duplicate observation or
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
        "rate": _find_column(df, rate_col, False),
        "dur": _find_column(df, dur_col, False),
        "addl": _find_column(df, addl_col, False),
        "ii": _find_column(df, ii_col, False),
        "ss": _find_column(df, ss_col, False),
        "cens": _find_column(df, cens_col, False),
        "lloq": _find_column(df, lloq_col, False),
        "limit": _find_column(df, limit_col, False),
    }
    if cols["cens"] is None and cens_col == "CENS":
        cols["cens"] = _find_column(df, "BLQ", False)  # the NONMEM M3 habit's flag column
    ic = cols["id"]
    codes = check_ids(df, ic)
    times = numeric_column(df, cols["time"], id_col=ic, missing=_MISSING)
    check_times(df, times, codes, id_col=ic, time_col=cols["time"])
    amt = None
    if cols["amt"] is not None:
        amt = numeric_column(df, cols["amt"], id_col=ic, missing=_MISSING)
    evid = _event_ids(df, cols, amt)
    dose, obs, event = np.isin(evid, (1, 4)), evid == 0, np.isin(evid, (1, 3, 4))
    if dose.any() and amt is None:
        raise ValueError("long table has dose rows (EVID 1) but no AMT column")
    items = read_dose_items(df, cols, ic, evid, amt)
    if amt is not None:
        stray = (evid == 3) & (np.nan_to_num(amt) != 0)
        if stray.any():
            pos = int(np.flatnonzero(stray)[0])
            raise ValueError(
                f"column {_show(cols['amt'])} has value {_show(amt[pos])} on a reset-only row "
                f"(EVID 3) at {_where(df, pos, ic)}; a reset with a dose is EVID 4"
            )
    if dose.any():
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
    dv, blq_text, lloq = read_limits(df, cols, ic, obs)
    mdv = mdv_given = None
    if cols["mdv"] is not None:
        mdv_given = numeric_column(df, cols["mdv"], id_col=ic, missing=_MISSING)
        mdv = np.where(np.isnan(mdv_given), 0.0, mdv_given)  # as NONMEM, a missing MDV reads 0
        # with an LLOQ, an observation without a value is below it (censored below)
        unexplained = obs & (mdv_given == 0) & np.isnan(dv) & ~np.isfinite(lloq)
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
    observed = obs if mdv is None else obs & (mdv != 1)
    dv, censored = censor(df, cols, ic, observed, dv, blq_text, lloq, mdv_given)
    if mdv is not None:
        dv = np.where(mdv == 1, np.nan, dv)
    out, k = _output_codes(df, cols["cmt"], obs, outputs, ic)
    if event.any():
        _check_dose_rows_dv(df, event, cols["dv"], mdv, ic)
        _check_duplicate_doses(
            df, codes, times, dose, amt, cols["cmt"], ic, items["dose_durations"]
        )

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
        flags = np.zeros(values.shape, bool)
        flags[row_of, out[o]] = censored[o]
        d_times, d_amounts, extras = expand_doses(np.arange(lo, hi), times, evid, amt, items)
        records.append(
            IndividualRecords(t_unique, values, d_times, d_amounts, **extras, censored=flags)
        )

    reserved = {c for c in cols.values() if c is not None}
    unread = [c for c in df.columns if c not in reserved]
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
    dose_cmt=0,
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
    dose_cmt : int, default=0
        ``CMT`` value written on dose rows whose ``dose_cmt`` is 0 (the model's
        default dose compartment, which NONMEM also reads from ``CMT`` 0).

    Returns
    -------
    df : DataFrame
        Columns ``ID, TIME, DV, AMT, EVID, MDV, CMT``, then those the records
        need: ``RATE`` and ``DUR`` for infusions (``RATE`` -2 with the
        duration in ``DUR``, which NONMEM reads with ``D1 = DUR`` in ``$PK``),
        ``SS`` and ``II`` for steady-state doses, ``CENS`` for censored
        values (``DV`` holds the limit); then the covariates. Resets are
        ``EVID`` 3 (no dose) or 4. One row per dose and per (time, output)
        pair, missing values as ``MDV`` 1 rows with ``DV`` NaN; sorted by time
        within each ID, doses before observations at equal times.
        ``from_long(to_long(X))`` gives ``X`` back.

    Examples
    --------
    >>> from sknlme.data import IndividualRecords, make_individuals, to_long
    >>> X = make_individuals([IndividualRecords([0.0, 1.0], [1.0, 0.5], [0.0], [4.0])],
    ...                      covariates={"WT": [70.0]})
    >>> to_long(X)
       ID  TIME   DV  AMT  EVID  MDV  CMT    WT
    0   1   0.0  NaN  4.0     1    1    0  70.0
    1   1   0.0  1.0  0.0     0    0    1  70.0
    2   1   1.0  0.5  0.0     0    0    1  70.0
    >>> rec = IndividualRecords([1.0], [0.2], [0.0], [4.0], dose_durations=[0.5],
    ...                         censored=[True])
    >>> to_long(make_individuals([rec]))
       ID  TIME   DV  AMT  EVID  MDV  CMT  RATE  DUR  CENS
    0   1   0.0  NaN  4.0     1    1    0  -2.0  0.5     0
    1   1   1.0  0.2  0.0     0    0    1   0.0  0.0     1
    """
    records = validate_individuals(X, require_values=False)
    k = records[0].n_outputs
    outputs = list(range(1, k + 1)) if outputs is None else list(outputs)
    if len(outputs) != k:
        raise ValueError(f"got {len(outputs)} CMT values in outputs for {k} outputs")
    extra = used_items(records)
    names = [id_col, time_col, dv_col, amt_col, evid_col, mdv_col, cmt_col, *extra]
    covs = covariate_columns(X)
    clash = [c for c in covs if c in names]
    if clash:
        raise ValueError(f"covariate column(s) {clash} clash with the long-table columns")
    position, t, dv, amt, order = [], [], [], [], []
    cols = {name: [] for name in ("EVID", "CMT", "RATE", "DUR", "SS", "II", "CENS")}
    for i, rec in enumerate(records):
        nd, no = rec.n_doses, rec.n_obs * k
        position += [i] * (nd + no)
        t += [rec.dose_times, np.repeat(rec.times, k)]
        dv += [np.full(nd, np.nan), rec.values.ravel()]
        amt += [rec.dose_amounts, np.zeros(no)]
        order += [np.arange(nd), nd + np.arange(no)]
        dose_items = dose_items_of(rec, dose_cmt)
        obs_items = {
            "EVID": np.zeros(no, int),
            "CMT": np.tile(np.array(outputs, object), rec.n_obs),
            "CENS": rec.censored.ravel().astype(int),
        }
        for name, values in cols.items():
            values += [
                dose_items.get(name, np.zeros(nd, int)),
                obs_items.get(name, np.zeros(no)),
            ]
    position = np.asarray(position, dtype=int)
    t, dv, amt, order = (np.concatenate(a) for a in (t, dv, amt, order))
    cols = {name: np.concatenate(values) for name, values in cols.items()}
    evid = cols["EVID"].astype(int)
    # Stable sort: by individual, then time, then dose events before observations.
    sort = np.lexsort((order, evid == 0, t, position))
    position, t, dv, amt, evid = position[sort], t[sort], dv[sort], amt[sort], evid[sort]
    mdv = np.where((evid > 0) | np.isnan(dv), 1, 0)
    df = pd.DataFrame(
        {
            id_col: X.index.take(position),
            time_col: t,
            dv_col: dv,
            amt_col: amt,
            evid_col: evid,
            mdv_col: mdv,
            cmt_col: pd.Series(list(cols["CMT"][sort])),
        }
    )
    for name in extra:
        values = cols[name][sort]
        df[name] = values.astype(int) if name in ("SS", "CENS") else values.astype(float)
    for name in covs:
        df[name] = X[name].iloc[position].reset_index(drop=True)
    return df
