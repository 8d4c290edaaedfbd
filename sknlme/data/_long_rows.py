"""Row-level checks and column reading of NONMEM-style long tables (for :func:`from_long`).

Each check raises a ValueError naming the column, the value, the ID and the row
(the table's index label) at fault.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._validation import _show, _where, numeric_column

_MISSING = ("", ".")


def _find_column(df, name, required):
    if name in df.columns:
        return name
    matches = [c for c in df.columns if isinstance(c, str) and c.lower() == name.lower()]
    if len(matches) > 1:
        raise ValueError(f"several columns match {_show(name)} (case-insensitively): {matches}")
    if matches:
        return matches[0]
    if required:
        raise ValueError(f"long table has no column {_show(name)}; columns are {list(df.columns)}")
    return None


def _event_ids(df, cols, amt):
    """EVID of every row (inferred from AMT when there is no EVID column)."""
    id_col = cols["id"]
    if cols["evid"] is None:
        if amt is None:
            return np.zeros(len(df), dtype=int)
        return np.where(np.nan_to_num(amt) > 0, 1, 0)
    evid = numeric_column(df, cols["evid"], id_col=id_col, missing=_MISSING)
    known = np.isin(evid, [0, 1, 2, 3, 4])
    if not known.all():
        pos = int(np.flatnonzero(~known)[0])
        raise ValueError(
            f"column {_show(cols['evid'])} has unknown EVID {_show(df[cols['evid']].iloc[pos])} "
            f"at {_where(df, pos, id_col)}; expected 0 (observation), 1 (dose), 2 (other "
            "event), 3 (reset) or 4 (reset and dose)"
        )
    return evid.astype(int)


def _output_codes(df, cmt_col, obs, outputs, id_col):
    """Output index (0..k-1) of every observation row, and k."""
    if cmt_col is None:
        if outputs is not None and len(outputs) != 1:
            raise ValueError("outputs given but the long table has no CMT column")
        return np.zeros(len(df), dtype=int), 1
    cmt = df[cmt_col]
    missing = obs & cmt.isna().to_numpy()
    if missing.any():
        pos = int(np.flatnonzero(missing)[0])
        raise ValueError(
            f"column {_show(cmt_col)} is missing on observation at {_where(df, pos, id_col)}"
        )
    if outputs is None:
        outputs = sorted(pd.unique(cmt[obs]).tolist())
    mapping = dict(outputs) if isinstance(outputs, dict) else {c: i for i, c in enumerate(outputs)}
    k = len(set(mapping.values()))
    if sorted(set(mapping.values())) != list(range(k)):
        raise ValueError(f"outputs must map CMT values onto 0..k-1, got {mapping}")
    codes = np.full(len(df), -1)
    rows = np.flatnonzero(obs)
    # one vectorised lookup: a per-row loop took 0.13 s of a 0.2 s read of
    # 1,000 individuals (11,000 observations)
    mapped = cmt.iloc[rows].map(mapping).to_numpy(dtype=float, na_value=np.nan)
    unknown = np.isnan(mapped)
    if unknown.any():
        pos = int(rows[np.flatnonzero(unknown)[0]])
        raise ValueError(
            f"column {_show(cmt_col)} has value {_show(cmt.iloc[pos])} at "
            f"{_where(df, pos, id_col)}, which is "
            f"not one of the outputs {list(mapping)}"
        )
    codes[rows] = mapped.astype(int)
    return codes, k


def _check_duplicates(df, codes, times, obs, out, cmt_col, id_col):
    rows = np.flatnonzero(obs)
    rows = rows[np.lexsort((rows, out[rows], times[rows], codes[rows]))]
    keys = np.stack([codes[rows], times[rows], out[rows]])
    same = np.all(keys[:, 1:] == keys[:, :-1], axis=0)
    if same.any():
        pos = int(rows[np.flatnonzero(same)[0] + 1])
        what = "" if cmt_col is None else f" of {cmt_col} {_show(df[cmt_col].iloc[pos])}"
        raise ValueError(
            f"duplicate observation{what} at time {_show(times[pos])} for {_where(df, pos, id_col)}"
        )


def _check_duplicate_doses(df, codes, times, dose, amt, cmt_col, id_col, durations):
    """Refuse a dose row repeated exactly (same individual, time, amount, CMT and duration).

    A bolus and an infusion at one time into one compartment (a loading dose) differ
    in duration and are not duplicates.
    """
    rows = np.flatnonzero(dose)
    if rows.size < 2:
        return
    cmt = np.zeros(len(df)) if cmt_col is None else pd.factorize(df[cmt_col])[0]
    keys = np.stack([codes[rows], times[rows], amt[rows], cmt[rows], durations[rows]])
    order = np.lexsort(keys[::-1])
    same = np.all(keys[:, order[1:]] == keys[:, order[:-1]], axis=0)
    if same.any():
        k = int(np.flatnonzero(same)[0])
        first, pos = sorted((int(rows[order[k]]), int(rows[order[k + 1]])))
        raise ValueError(
            f"duplicate dose row: AMT {_show(amt[pos])} at time {_show(times[pos])} for "
            f"{_where(df, pos, id_col)} repeats {_where(df, first)}; remove one (two doses at "
            "one time need different compartments or one row with their sum)"
        )


def _check_dose_rows_dv(df, dose, dv_col, mdv, id_col):
    """Refuse an observed value on a dose row (NONMEM would not read it as one)."""
    dv = pd.to_numeric(df[dv_col], errors="coerce").to_numpy(dtype=float)
    raw = df[dv_col].to_numpy()
    given = np.array(
        [not (pd.isna(v) or (isinstance(v, str) and v.strip() in _MISSING)) for v in raw]
    )
    bad = dose & given & ~(dv == 0)
    if mdv is not None:
        bad &= mdv != 1
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"column {_show(dv_col)} has value {_show(raw[pos])} on a dose-event row "
            f"(EVID 1, 3 or 4) at {_where(df, pos, id_col)}; put the observation on its own "
            "row (EVID 0), or set MDV 1 if it is not one"
        )


def _covariates(df, names, codes, first, id_col):
    frame = {}
    for name in names:
        column = df[name]
        per_id = column.groupby(codes, sort=True).nunique(dropna=False)
        if (per_id > 1).any():
            code = int(per_id.index[(per_id > 1).to_numpy()][0])
            values = pd.unique(column[codes == code]).tolist()
            raise ValueError(
                f"covariate {_show(name)} is not constant within ID "
                f"{_show(df[id_col].iloc[first[code]])}: "
                f"values {values}; time-varying covariates are not supported yet"
            )
        frame[name] = column.iloc[first].reset_index(drop=True)
    return pd.DataFrame(frame) if frame else None
