"""The shipped theophylline data set."""

import numpy as np
import pandas as pd

from sknlme.data import from_long, validate_individuals
from sknlme.datasets import load_theophylline


def test_individuals_table():
    X = load_theophylline()
    assert X.shape == (12, 3) and list(X.columns) == ["WT", "DOSE", "records"]
    assert list(X.index) == list(range(1, 13)) and X.index.name == "ID"
    records = validate_individuals(X)
    assert all(r.n_obs == 11 and r.n_outputs == 1 and r.n_doses == 1 for r in records)
    assert all(r.dose_times.tolist() == [0.0] for r in records)
    # subject 1 (values of the CSV file)
    rec = X.loc[1, "records"]
    assert X.loc[1, "WT"] == 79.6 and X.loc[1, "DOSE"] == 4.02
    assert rec.dose_amounts.tolist() == [4.02]
    np.testing.assert_array_equal(
        rec.times, [0, 0.25, 0.57, 1.12, 2.02, 3.82, 5.1, 7.03, 9.05, 12.12, 24.37]
    )
    np.testing.assert_array_equal(
        rec.values[:, 0], [0.74, 2.84, 6.57, 10.5, 9.66, 8.58, 8.36, 7.47, 6.89, 5.94, 3.28]
    )
    assert X.loc[2, "records"].values[0, 0] == 0.0  # subject 2 starts at concentration 0


def test_long_table():
    long = load_theophylline(as_long=True)
    assert long.shape == (144, 8)
    assert list(long.columns) == ["ID", "TIME", "DV", "AMT", "EVID", "MDV", "WT", "DOSE"]
    assert (long.groupby("ID")["EVID"].first() == 1).all()  # dose row precedes time-0 sample
    assert long["EVID"].sum() == 12
    X = from_long(long, covariates=["WT", "DOSE"])
    Y = load_theophylline()
    pd.testing.assert_frame_equal(X.drop(columns="records"), Y.drop(columns="records"))
    assert all(a == b for a, b in zip(X["records"], Y["records"], strict=True))
