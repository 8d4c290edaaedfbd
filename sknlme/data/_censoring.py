"""Censored observations of long tables: ``CENS``/``BLQ`` flags and ``LLOQ`` limits.

Conventions read (Monolix, rxode2/nlmixr2, and the NONMEM M3 habit of a ``BLQ``
flag column):

* ``CENS`` (or, without one, ``BLQ``) = 1: the observation lies below a limit,
  which ``DV`` holds, unless an ``LLOQ`` column gives it on that row.
  ``CENS = -1`` (above an upper limit) is refused, as is a finite ``LIMIT``
  (the other bound of an interval: the M3 likelihood here takes the lower
  bound as minus infinity).
* ``LLOQ``: an observation whose ``DV`` is below it, or is the text ``"BLQ"``
  (also ``"BQL"``, ``"BLOQ"``, ``"<LLOQ"``), or is missing while ``MDV`` is 0,
  is censored at ``LLOQ``. A missing ``DV`` without an ``MDV`` column, or
  with ``MDV`` 1, stays a missing value (the sample may not exist).

The value of a censored observation becomes its limit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._validation import _show, _where, numeric_column

BLQ_TEXTS = ("BLQ", "BQL", "BLOQ", "<LLOQ")
_MISSING = ("", ".")


def read_limits(df, cols, id_col, obs):
    """``(dv, blq_text, lloq)`` of every row.

    ``blq_text`` marks observations whose ``DV`` is a BLQ text; where ``LLOQ`` is
    given those read NaN (the limit comes from ``LLOQ``); elsewhere they stay
    the non-numeric value they are, and :func:`numeric_column` names them.
    """
    raw = df[cols["dv"]]
    text = raw.map(lambda v: isinstance(v, str) and v.strip().upper() in BLQ_TEXTS)
    blq_text = obs & text.to_numpy(bool)
    lloq = np.full(len(df), np.nan)
    if cols["lloq"] is not None:
        lloq = numeric_column(df, cols["lloq"], id_col=id_col, rows=obs, missing=_MISSING)
        bad = obs & ((lloq <= 0) | np.isinf(lloq))
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"column {_show(cols['lloq'])} has value {_show(df[cols['lloq']].iloc[pos])} at "
                f"{_where(df, pos, id_col)}; a limit of quantification must be positive "
                "and finite"
            )
    readable = blq_text & np.isfinite(lloq)
    frame = pd.DataFrame({id_col: df[id_col], cols["dv"]: raw.where(~readable, np.nan)})
    dv = numeric_column(frame, cols["dv"], id_col=id_col, rows=obs, missing=_MISSING)
    return dv, blq_text & np.isfinite(lloq), lloq


def censor(df, cols, id_col, observed, dv, blq_text, lloq, mdv_given):
    """Values (censored ones set to their limit) and the censored flag of every row.

    ``observed``: observation rows that are not ``MDV`` 1; ``mdv_given``: the
    ``MDV`` column as read (NaN where blank), or None.
    """
    flag = np.zeros(len(df), bool)
    if cols["cens"] is not None:
        cens = numeric_column(df, cols["cens"], id_col=id_col, rows=observed, missing=_MISSING)
        cens = np.where(observed, np.nan_to_num(cens, nan=0.0), 0.0)
        bad = ~np.isin(cens, (0, 1))
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            why = (
                "censoring above an upper limit (CENS -1) is not supported"
                if cens[pos] == -1
                else "expected 0 (observed) or 1 (below the limit in DV or LLOQ)"
            )
            raise ValueError(
                f"column {_show(cols['cens'])} has value {_show(df[cols['cens']].iloc[pos])} at "
                f"{_where(df, pos, id_col)}; {why}"
            )
        flag = cens == 1
    has_lloq = np.isfinite(lloq)
    blank_observed = np.isnan(dv) & ~blq_text
    if mdv_given is not None:
        blank_observed &= mdv_given == 0
    else:
        blank_observed[:] = False
    with np.errstate(invalid="ignore"):
        below = has_lloq & ((dv < lloq) | blq_text | blank_observed)
    censored = observed & (flag | below)
    limit = np.where(has_lloq, lloq, dv)
    missing = censored & np.isnan(limit)
    if missing.any():
        pos = int(np.flatnonzero(missing)[0])
        raise ValueError(
            f"column {_show(cols['cens'])} marks the observation at {_where(df, pos, id_col)} "
            f"as censored but its limit is missing: put it in {_show(cols['dv'])} or an LLOQ "
            "column"
        )
    if cols["limit"] is not None:
        other = numeric_column(df, cols["limit"], id_col=id_col, rows=censored, missing=_MISSING)
        bad = censored & np.isfinite(other)
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"column {_show(cols['limit'])} has value {_show(other[pos])} at "
                f"{_where(df, pos, id_col)}: censoring in an interval is not supported; the "
                "likelihood (M3) takes an observation below its limit to lie anywhere below it, "
                "so drop the LIMIT column (or set it to -inf) to use M3"
            )
    return np.where(censored, limit, dv), censored
