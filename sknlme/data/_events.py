"""NONMEM dose-event records of long tables: RATE, DUR, CMT, SS, II, ADDL, EVID 3/4.

:func:`read_dose_items` reads the per-row items (checking each against NONMEM's
rules, with errors naming ID, column, value and row); :func:`expand_doses`
turns the event rows of one individual into its dose arrays, with ADDL
expanded; :func:`dose_items_of` writes them back for :func:`to_long`.

Semantics follow NONMEM's PREDPP (help pages of the ADDL, II, SS and RATE data
items, Guide VI ch. V):

* ``RATE > 0``: zero-order input at that rate, so the duration is
  ``AMT / RATE``. ``RATE = -2`` with a ``DUR`` value: duration ``DUR`` (the
  ``D1 = DUR`` idiom of ``$PK``, which :func:`to_long` writes); other ``RATE``
  -1/-2 (rate or duration modelled in ``$PK``) are refused. A ``DUR`` column
  alone (the rxode2/nlmixr2 convention) gives the duration directly.
* ``ADDL = n`` with ``II``: n further doses exactly like this one at
  ``TIME + k * II``, k = 1..n; they are not steady-state and not resets.
  A later SS=1 dose or reset event (EVID 3/4) cancels the additional doses
  still pending at its time ("pending additional doses are cancelled").
* ``SS = 1/2`` with ``II > 0``: kept as ``dose_ss``/``dose_ii``; the model
  computes the steady state. SS=1 with ``AMT = 0`` and ``RATE > 0`` (a
  steady-state constant infusion) and SS=3 are refused.
* ``EVID 3``: reset only (amount 0, ``dose_reset``); ``EVID 4``: reset and dose.
* ``CMT`` on dose rows: ``dose_cmt``; 0 or missing is the default dose
  compartment, as in NONMEM.
* Items on observation and other (EVID 0/2) rows are not read: NONMEM only
  warns about them, and blank or NaN there is common.
"""

from __future__ import annotations

import numpy as np

from ._validation import _show, _where, numeric_column

EVENT_ITEMS = ("RATE", "DUR", "ADDL", "II", "SS")
_MISSING = ("", ".")


def _fail(df, col, pos, id_col, why):
    raise ValueError(
        f"column {_show(col)} has value {_show(df[col].iloc[pos])} at "
        f"{_where(df, pos, id_col)}; {why}"
    )


def _first(mask):
    return int(np.flatnonzero(mask)[0])


def read_dose_items(df, cols, id_col, evid, amt):
    """Per-row duration, compartment, SS, II and ADDL of the dose-event rows.

    ``cols`` maps ``"rate", "dur", "addl", "ii", "ss", "cmt", "amt"`` to the
    column names found (or None). Rows other than doses (EVID 1, 4) and resets
    (EVID 3) read 0. Returns a dict of float/int arrays of length ``len(df)``.
    """
    n = len(df)
    amt = np.zeros(n) if amt is None else np.nan_to_num(amt)
    dose = np.isin(evid, (1, 4))
    event = dose | (evid == 3)

    def item(key):
        col = cols[key]
        if col is None:
            return np.zeros(n)
        values = numeric_column(df, col, id_col=id_col, rows=event, missing=_MISSING)
        return np.where(event, np.nan_to_num(values, nan=0.0), 0.0)

    rate, dur, addl, ii, ss = (item(k) for k in ("rate", "dur", "addl", "ii", "ss"))
    for key, values in (("ii", ii), ("dur", dur), ("addl", addl)):
        bad = values < 0
        if bad.any():
            _fail(df, cols[key], _first(bad), id_col, f"{key.upper()} must be non-negative")
    frac = addl != np.round(addl)
    if frac.any():
        _fail(df, cols["addl"], _first(frac), id_col, "ADDL must be a whole number of doses")
    bad = event & ~np.isin(ss, (0, 1, 2))
    if bad.any():
        _fail(df, cols["ss"], _first(bad), id_col, "expected SS 0, 1 or 2 (SS 3 is not supported)")
    for key, values in (("rate", rate), ("dur", dur), ("addl", addl), ("ss", ss), ("ii", ii)):
        stray = (evid == 3) & (values != 0)
        if stray.any():
            _fail(df, cols[key], _first(stray), id_col, "a reset-only event (EVID 3) gives no dose")
    duration = _durations(df, cols, id_col, dose, amt, rate, dur, ss)
    no_ii = (addl > 0) & ~(ii > 0)
    if no_ii.any():
        pos = _first(no_ii)
        _fail(df, cols["addl"], pos, id_col, "additional doses (ADDL) need II > 0, the interval")
    no_ii = (ss > 0) & ~(ii > 0)
    if no_ii.any():
        pos = _first(no_ii)
        _fail(df, cols["ss"], pos, id_col, "a steady-state dose (SS) needs II > 0, the interval")
    long_inf = (ss > 0) & (duration > ii)
    if long_inf.any():
        pos = _first(long_inf)
        _fail(
            df,
            cols["ss"],
            pos,
            id_col,
            f"the steady-state infusion lasts {_show(duration[pos])}, longer than its II "
            f"{_show(ii[pos])}",
        )
    return {
        "dose_durations": duration,
        "dose_cmt": _dose_compartments(df, cols["cmt"], id_col, dose),
        "dose_ss": ss.astype(np.int64),
        # II matters for steady state only; additional doses are expanded with it
        "dose_ii": np.where(ss > 0, ii, 0.0),
        "addl": addl.astype(np.int64),
        "ii": ii,
    }


def _durations(df, cols, id_col, dose, amt, rate, dur, ss):
    if cols["dur"] is not None and cols["rate"] is not None:
        both = dose & (rate > 0) & (dur > 0)
        if both.any():
            _fail(
                df,
                cols["dur"],
                _first(both),
                id_col,
                f"the dose has both RATE {_show(rate[_first(both)])} and a DUR; give one",
            )
    modelled = dose & (rate < 0) & ~((rate == -2) & (dur > 0))
    if modelled.any():
        pos = _first(modelled)
        what = {-1: "a rate", -2: "a duration"}.get(rate[pos])
        why = (
            f"RATE {rate[pos]:g} asks for {what} modelled in $PK, which is not supported: "
            "give RATE > 0, or the duration in a DUR column (with RATE -2 or 0)"
            if what
            else "RATE must be positive (an infusion), 0 (a bolus), -1 or -2"
        )
        _fail(df, cols["rate"], pos, id_col, why)
    constant = dose & (ss > 0) & (rate > 0) & (amt == 0)
    if constant.any():
        _fail(
            df,
            cols["rate"],
            _first(constant),
            id_col,
            "a steady-state constant infusion (SS with AMT 0 and RATE > 0) is not supported; "
            "give the infusion as doses with AMT, RATE and II",
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        by_rate = np.where(rate > 0, amt / np.where(rate > 0, rate, 1.0), 0.0)
    return np.where(dose, np.where(rate > 0, by_rate, dur), 0.0)


def _dose_compartments(df, cmt_col, id_col, dose):
    """CMT of each dose row as a non-negative integer (0: the default dose compartment)."""
    if cmt_col is None or not dose.any():
        return np.zeros(len(df), np.int64)
    values = numeric_column(df, cmt_col, id_col=id_col, rows=dose, missing=_MISSING)
    values = np.where(dose, np.nan_to_num(values, nan=0.0), 0.0)
    bad = dose & ((values < 0) | (values != np.round(values)))
    if bad.any():
        _fail(
            df,
            cmt_col,
            _first(bad),
            id_col,
            "a dose's CMT must be a compartment number >= 1 (0 or blank: the model's default); "
            "negative CMT (a compartment switched off) is not supported",
        )
    return values.astype(np.int64)


def expand_doses(rows, times, evid, amt, items):
    """Dose arrays of one individual from its event rows (positions, in time order).

    Returns ``dose_times, dose_amounts`` and a dict of the extras, with the ADDL
    doses in time order among the others and those cancelled by a later SS=1
    dose or reset removed.
    """
    rows = rows[np.isin(evid[rows], (1, 3, 4))]
    t, n_add, ii = times[rows], items["addl"][rows], items["ii"][rows]
    cancels = (items["dose_ss"][rows] == 1) | np.isin(evid[rows], (3, 4))
    # time of the first cancelling event after each row (rows are sorted by time)
    at = np.where(cancels, t, np.inf)
    next_cancel = np.r_[np.minimum.accumulate(at[::-1])[::-1][1:], np.inf]
    source = np.repeat(np.arange(len(rows)), n_add)
    k = np.arange(len(source)) - np.repeat(np.cumsum(n_add) - n_add, n_add) + 1
    t_add = t[source] + k * ii[source]
    keep = t_add < next_cancel[source]
    source, t_add = source[keep], t_add[keep]
    origin = np.r_[np.arange(len(rows)), source]
    dose_times = np.r_[t, t_add]
    # Stable sort: at equal times the explicit records keep their row order, and an
    # additional dose coinciding with a cancelling event is already dropped, so the
    # order among the doses left at one time does not change a linear model's output.
    order = np.argsort(dose_times, kind="stable")
    explicit = np.r_[np.ones(len(rows), bool), np.zeros(len(t_add), bool)][order]
    pick = rows[origin[order]]
    amounts = np.where(evid[pick] == 3, 0.0, np.nan_to_num(amt[pick]) if amt is not None else 0.0)
    extras = {
        "dose_durations": items["dose_durations"][pick],
        "dose_cmt": items["dose_cmt"][pick],
        "dose_ss": np.where(explicit, items["dose_ss"][pick], 0),
        "dose_ii": np.where(explicit, items["dose_ii"][pick], 0.0),
        "dose_reset": explicit & np.isin(evid[pick], (3, 4)),
    }
    return dose_times[order], amounts, extras


def dose_items_of(rec, default_cmt):
    """Long-table items of the dose rows of one record (for :func:`to_long`).

    Returns a dict of per-dose arrays: ``EVID`` (1, 3 or 4), ``CMT``, ``RATE``
    (-2 for an infusion, whose duration is in ``DUR``; written so, durations
    round-trip exactly, where ``AMT / RATE`` would not), ``DUR``, ``SS``, ``II``.
    """
    reset = rec.dose_reset
    evid = np.where(reset, np.where(rec.dose_amounts == 0, 3, 4), 1)
    infusion = rec.dose_durations > 0
    return {
        "EVID": evid,
        "CMT": np.where(rec.dose_cmt > 0, rec.dose_cmt, default_cmt).astype(object),
        "RATE": np.where(infusion, -2.0, 0.0),
        "DUR": rec.dose_durations.copy(),
        "SS": rec.dose_ss.copy(),
        "II": rec.dose_ii.copy(),
    }


def used_items(records):
    """Which optional long-table columns a list of records needs written."""
    features = frozenset().union(*(r.dosing_features for r in records))
    names = []
    if "infusion" in features:
        names += ["RATE", "DUR"]
    if "steady_state" in features:
        names += ["SS", "II"]
    if "censoring" in features:
        names += ["CENS"]
    return names
