"""The theophylline data set (Boeckmann, Sheiner and Beal, 1994)."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd

from ..data import from_long


def _long_table():
    source = resources.files("sknlme.datasets").joinpath("data", "theophylline.csv")
    with source.open("r") as handle:
        raw = pd.read_csv(handle)
    obs = pd.DataFrame(
        {
            "ID": raw["Subject"].astype(int),
            "TIME": raw["Time"].astype(float),
            "DV": raw["conc"].astype(float),
            "AMT": 0.0,
            "EVID": 0,
            "MDV": 0,
            "WT": raw["Wt"].astype(float),
            "DOSE": raw["Dose"].astype(float),
        }
    )
    first = obs.drop_duplicates("ID")
    dose = first.assign(TIME=0.0, DV=np.nan, AMT=first["DOSE"], EVID=1, MDV=1)
    # Doses first: the dose at time 0 precedes the observation at time 0.
    both = pd.concat([dose, obs], keys=[0, 1], names=["kind", "row"]).reset_index()
    both = both.sort_values(["ID", "TIME", "kind", "row"], kind="stable")
    return both.drop(columns=["kind", "row"]).reset_index(drop=True)


def load_theophylline(as_long=False):
    """Load the theophylline pharmacokinetics data set.

    Twelve subjects received one oral dose of theophylline (anti-asthmatic)
    at time 0; plasma concentrations (mg/L) were measured 11 times over
    25 hours, the first just before dosing.

    Parameters
    ----------
    as_long : bool, default=False
        Return the NONMEM-style long table (columns ``ID, TIME, DV, AMT,
        EVID, MDV, WT, DOSE``, one dose row per subject) instead of the
        individuals table. :func:`sknlme.data.from_long` turns it into the
        same individuals table.

    Returns
    -------
    X : DataFrame
        Individuals table indexed by ``ID`` (the subject, 1-12) with
        covariates ``WT`` (body weight, kg) and ``DOSE`` (mg/kg), and
        records: 11 concentration observations (mg/L, times in hours) and
        one dose of ``DOSE`` at time 0.

    Examples
    --------
    >>> from sknlme.datasets import load_theophylline
    >>> X = load_theophylline()
    >>> X.shape, list(X.columns)
    ((12, 3), ['WT', 'DOSE', 'records'])
    >>> rec = X.loc[1, "records"]
    >>> rec.n_obs, rec.dose_times.tolist(), rec.dose_amounts.tolist()
    (11, [0.0], [4.02])
    >>> load_theophylline(as_long=True).shape
    (144, 8)
    """
    long = _long_table()
    if as_long:
        return long
    return from_long(long, covariates=["WT", "DOSE"])
