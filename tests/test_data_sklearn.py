"""Individuals tables pass through scikit-learn's transformers, splitters and searches."""

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sknlme.data import IndividualRecords, check_individuals, from_arrays


def population(n=12, seed=0):
    """Individuals whose values are WT / 10 + noise at ragged times."""
    rng = np.random.default_rng(seed)
    wt = rng.uniform(50, 90, n)
    times = np.sort(rng.uniform(0, 10, (n, 5)), axis=1)
    times[::3, 3:] = np.nan  # ragged: every third individual has 3 time points
    values = wt[:, None] / 10 + rng.normal(0, 0.1, (n, 5))
    values[np.isnan(times)] = np.nan
    return from_arrays(
        values,
        times,
        dose_times=[0.0],
        dose_amounts=[100.0],
        covariates={"WT": wt, "DOSE": np.full(n, 4.0)},
        ids=np.arange(101, 101 + n),
    )


def prep():
    return ColumnTransformer(
        [("wt", StandardScaler(), ["WT"])],
        remainder="passthrough",
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")


def test_column_transformer_keeps_records():
    X = population()
    Z = prep().fit_transform(X)
    assert list(Z.columns) == ["WT", "DOSE", "records"]
    pd.testing.assert_index_equal(Z.index, X.index)
    assert all(a is b for a, b in zip(Z["records"], X["records"], strict=True))
    np.testing.assert_allclose(Z["WT"].mean(), 0.0, atol=1e-12)
    assert check_individuals(Z)  # still an individuals table


def test_kfold_splits_individuals():
    X = population()
    seen = []
    for train, test in KFold(4, shuffle=True, random_state=0).split(X):
        Xtr, Xte = X.iloc[train], X.iloc[test]
        assert set(Xtr.index).isdisjoint(Xte.index)
        assert all(Xte.loc[i, "records"] is X.loc[i, "records"] for i in Xte.index)
        seen += list(Xte.index)
    assert sorted(seen) == list(X.index)


class MeanLevel(BaseEstimator):
    """Predicts each individual's mean value as intercept + slope * (scaled) WT."""

    def __init__(self, slope=0.0):
        self.slope = slope

    def _levels(self, X):
        records = check_individuals(X)
        assert all(isinstance(r, IndividualRecords) for r in records)
        return np.array([np.nanmean(r.values) for r in records])

    def fit(self, X, y=None):
        self.intercept_ = float(np.mean(self._levels(X) - self.slope * X["WT"].to_numpy()))
        return self

    def score(self, X, y=None):
        pred = self.intercept_ + self.slope * X["WT"].to_numpy()
        return -float(np.mean((self._levels(X) - pred) ** 2))


def test_grid_search_pipeline_sees_records():
    X = population()
    # level = WT / 10 + noise, and the scaler divides WT by sd(WT), so the slope on scaled WT
    # is sd(WT) / 10; the grid holds it (rounded) between two wrong values, which must lose.
    slope = round(float(X["WT"].std(ddof=0)) / 10, 2)
    pipe = make_pipeline(prep(), MeanLevel())
    grid = {"meanlevel__slope": [0.0, slope, 3 * slope]}
    search = GridSearchCV(pipe, grid, cv=KFold(3)).fit(X)
    assert search.best_params_ == {"meanlevel__slope": slope}
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    # Refit on all of X the residual of each individual's mean is the noise mean of 3-5 draws
    # of sd 0.1 (variance <= 0.01 / 3 = 0.0033) plus a rounding error <= 0.005 ** 2: the
    # mean squared error must be below 0.01; records mangled on the way would break this.
    assert search.best_estimator_.score(X) > -0.01
