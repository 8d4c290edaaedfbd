"""The Quinidine study (Verme et al., 1992; R nlme's ``Quinidine``)."""

from __future__ import annotations

from importlib import resources

import pandas as pd

from ..data import from_long

# baseline covariates of the individuals table: column of R's data -> name here
_COVARIATES = {"Age": "AGE", "Height": "HT", "Weight": "WT", "glyco": "GLYCO"}
_CATEGORIES = {"Race": "RACE", "Smoke": "SMOKE", "Ethanol": "ETHANOL", "Heart": "HEART"}
_NONMEM = ("ID", "TIME", "DV", "AMT", "EVID", "MDV", "CMT", "SS", "II")


def _raw():
    source = resources.files("sknlme.datasets").joinpath("data", "quinidine.csv")
    with source.open("r") as handle:
        return pd.read_csv(handle, dtype={"Subject": int})


def _long_table():
    """R's rows as NONMEM records, one row per dose or concentration.

    R's ``quinModel`` (nlme's C ``nlme_one_comp_open``) reads a dose row with
    an ``interval`` as the steady state of that dose repeated every
    ``interval``, replacing the state before it, and the dose of the row
    itself included: NONMEM's ``SS`` 1 with ``II`` the interval. Other dose
    rows add to the depot (``SS`` 0); rows with neither dose nor
    concentration (82, e.g. subject 46's first) change nothing and are
    dropped.
    """
    raw = _raw()
    dose, obs = raw["dose"].notna(), raw["conc"].notna()
    raw = raw[dose | obs]
    dose, obs = raw["dose"].notna(), raw["conc"].notna()
    ss = raw["interval"].notna()
    long = pd.DataFrame(
        {
            "ID": raw["Subject"],
            "TIME": raw["time"].astype(float),
            "DV": raw["conc"].astype(float),
            "AMT": raw["dose"].fillna(0.0).astype(float),
            "EVID": dose.astype(int),
            "MDV": dose.astype(int),
            "CMT": 1,
            "SS": ss.astype(int),
            "II": raw["interval"].fillna(0.0).astype(float),
        }
    )
    first = raw.groupby("Subject", sort=False).head(1).set_index("Subject")
    base = pd.DataFrame({new: first[old] for old, new in _COVARIATES.items()})
    # creatinine clearance category, 1 for >= 50 mL/min (R's ordered factor "< 50" < ">= 50")
    base["CRCL50"] = (first["Creatinine"] == ">= 50").astype(int)
    for old, new in _CATEGORIES.items():
        base[new] = first[old].astype(str)
    long = long.join(base, on="ID")
    return long.reset_index(drop=True)


def load_quinidine(as_long=False):
    """Load the Quinidine routine-monitoring study (136 patients).

    Oral quinidine (mg of quinidine base) was given to 136 hospitalised
    patients treated for cardiac arrhythmia, in repeated doses, some at
    steady state; 361 serum concentrations (mg/L, times in hours from entry)
    were drawn at irregular times, 1-11 per patient (46 have one). The data
    are R nlme's ``Quinidine`` (Pinheiro and Bates 2000, Appendix A.25, from
    Verme et al. 1992), shipped unchanged as ``data/quinidine.csv``; the
    dose rows are converted to NONMEM records as R's ``quinModel`` reads
    them (see Notes).

    Parameters
    ----------
    as_long : bool, default=False
        Return the NONMEM-style long table (``ID, TIME, DV, AMT, EVID, MDV,
        CMT, SS, II`` and the covariates) instead of the individuals table.
        :func:`sknlme.data.from_long` turns it into the same table.

    Returns
    -------
    X : DataFrame
        Individuals table indexed by ``ID`` (R's ``Subject``, in R's row
        order) with each patient's first (baseline) covariate values:
        ``AGE`` (years), ``HT`` (height, inches), ``WT`` (weight, kg),
        ``GLYCO`` (alpha-1-acid glycoprotein, mg/dL), ``CRCL50`` (1 where
        the creatinine clearance is >= 50 mL/min, else 0), ``RACE``,
        ``SMOKE``, ``ETHANOL``, ``HEART`` (congestive heart failure: text
        categories), and ``records``: the concentrations and the doses
        (depot, ``CMT`` 1).

    Notes
    -----
    A dose row of R's data with an ``interval`` means steady state at that
    interval: ``quinModel`` (C ``nlme_one_comp_open`` in nlme) replaces the
    state by that of the dose repeated every ``interval`` forever, this
    dose included, which is NONMEM's ``SS`` 1 with ``II`` = ``interval``
    (249 of the 1028 doses). Rows with neither dose nor concentration are
    dropped: they change nothing there.

    Weight, glycoprotein, creatinine clearance, age, smoking and heart
    failure vary within some patients in R's data (glycoprotein in 89 of
    them); sknlme's covariates are per individual, so the tables here hold
    the first value; ``data/quinidine.csv`` keeps every row.

    Licence: the data are distributed with R's nlme package under the GNU
    GPL (version 2 or later); source Verme, C. N., Ludden, T. M., Clementi,
    W. A. and Harris, S. C. (1992), Pharmacokinetics of quinidine in male
    patients: a population analysis, *Clinical Pharmacokinetics* 22,
    468-480, via Pinheiro, J. C. and Bates, D. M. (2000), *Mixed-Effects
    Models in S and S-PLUS*, Springer.

    Examples
    --------
    >>> from sknlme.datasets import load_quinidine
    >>> X = load_quinidine()
    >>> X.shape
    (136, 10)
    >>> rec = X.loc[1, "records"]
    >>> rec.times.tolist(), rec.n_doses, int(rec.dose_ss.sum())
    ([49.25, 193.33], 14, 1)
    >>> int(X["records"].map(lambda r: r.n_obs).sum())
    361
    >>> load_quinidine(as_long=True).shape
    (1389, 18)
    """
    long = _long_table()
    if as_long:
        return long
    covariates = [c for c in long.columns if c not in _NONMEM]
    return from_long(long, covariates=covariates)
