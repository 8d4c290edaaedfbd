"""load_quinidine: R's Quinidine rows as NONMEM records, read as R's quinModel reads them."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sknlme.data import from_long
from sknlme.datasets import load_quinidine
from sknlme.models import LinearCompartmental

REFERENCE = json.loads((Path(__file__).parent / "data" / "quinidine_nlme.json").read_text())


def test_counts_match_r():
    X = load_quinidine()
    records = X["records"]
    # R: 136 subjects, 361 concentrations, 1028 doses of which 249 with an interval
    assert len(X) == 136
    assert records.map(lambda r: r.n_obs).sum() == 361
    assert records.map(lambda r: r.n_doses).sum() == 1028
    assert records.map(lambda r: int(r.dose_ss.sum())).sum() == 249
    # observations per subject as R's table(): 46 subjects with one, 3 with eleven
    counts = records.map(lambda r: r.n_obs).value_counts()
    assert counts[1] == 46 and counts[11] == 3 and counts.index.max() == 11
    # steady-state doses carry their interval, the others none
    for rec in records:
        ss = rec.dose_ss > 0
        assert np.all(rec.dose_ii[ss] > 0) and np.all(rec.dose_ii[~ss] == 0)


def test_long_table_round_trip_and_baseline_covariates():
    long = load_quinidine(as_long=True)
    X = load_quinidine()
    covs = [c for c in X.columns if c != "records"]
    again = from_long(long, covariates=covs)
    pd.testing.assert_frame_equal(again[covs], X[covs])
    # subject 1 entered weighing 106 kg with glycoprotein 0.41 mg/dL (0.41 -> 1.11 later)
    assert X.loc[1, "WT"] == 106 and X.loc[1, "GLYCO"] == pytest.approx(0.41)
    assert set(X["CRCL50"]) == {0, 1}


def test_concentrations_match_quinmodel():
    """Our one-compartment model on the converted records reproduces R's quinModel.

    The reference is R's own quinModel at lV 5, lKa -0.3, lCl 2 for every subject
    (tests/data/quinidine_nlme.R), stored with 10 significant digits: agreement to
    1e-8 relative says the steady-state reading, dose order and dropped rows are R's.
    """
    ref = REFERENCE["quinModel"]
    X = load_quinidine()
    p = ref["params"]
    model = LinearCompartmental(1, "oral")
    phi = np.tile([p["lCl"], p["lV"], p["lKa"], 0.0], (len(X), 1))
    pred = model.predict(phi, X)[..., 0]
    ours = np.concatenate([row[np.isfinite(row)] for row in pred])
    ids = np.concatenate([[i] * r.n_obs for i, r in X["records"].items()])
    np.testing.assert_array_equal(ids, np.asarray(ref["subject"], dtype=int))
    np.testing.assert_allclose(ours, ref["conc"], rtol=1e-8)
