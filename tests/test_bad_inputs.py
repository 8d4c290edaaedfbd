# ruff: noqa: E501 (one case per line reads as a table)
"""A catalogue of bad inputs: each gives a clear error or a documented warning naming the cause.

Every case is classified: ``("error", ExceptionType, pattern)`` — the call raises that
type with a message matching ``pattern`` (which names the individual, column, value or
parameter at fault) — or ``("warning", WarningType, pattern)``. No case may be accepted
silently or crash with an unrelated exception. Cases for saved posterior files are in
tests/test_posterior*.py.
"""

import copy
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.utils._param_validation import InvalidParameterError

from sknlme.data import (
    IndividualRecords,
    Padded,
    as_study,
    fixed_design,
    from_arrays,
    from_long,
    make_individuals,
    validate_individuals,
)
from sknlme.models import ErrorModel, FunctionModel, LinearGaussian, OneCompartmentOral, get_model
from sknlme.population import NLMEPopulationEstimator, PopulationObjective
from sknlme.posterior import ExactGaussianPosterior


def long_table(edits=()):
    df = pd.DataFrame(
        {
            "ID": [1, 1, 1, 2, 2, 2],
            "TIME": [0.0, 0.5, 2.0, 0.0, 1.0, 3.0],
            "DV": [np.nan, 1.0, 0.5, np.nan, 2.0, 1.0],
            "AMT": [100.0, 0, 0, 80.0, 0, 0],
            "EVID": [1, 0, 0, 1, 0, 0],
            "MDV": [1, 0, 0, 1, 0, 0],
            "WT": [70.0, 70, 70, 60, 60, 60],
        }
    )
    for (column, row), value in dict(edits).items():
        if isinstance(value, str) and df[column].dtype != object:
            df[column] = df[column].astype(object)
        df.loc[row, column] = value
    return df


def rec(times=(0.0, 1.0), values=(1.0, 2.0), dose_times=(0.0,), amounts=(1.0,)):
    return IndividualRecords(times, values, dose_times, amounts)


_MODEL = LinearGaussian(n_params=2, sigma=0.3)
_X, _ = _MODEL.simulate(12, random_state=0)
_POST = ExactGaussianPosterior(_MODEL).fit()


def fit(**params):
    params = {"n_samples": 20, "n_starts": 1, "random_state": 0} | params
    return NLMEPopulationEstimator(_POST, **params).fit(_X)


def fitted():
    return fit()


E, W = "error", "warning"

CASES = {
    # ------------------------------------------------------------ long tables
    "long: missing ID": (lambda: from_long(long_table({("ID", 4): np.nan})), E, ValueError, r"'ID' is missing"),
    "long: negative time": (lambda: from_long(long_table({("TIME", 5): -1.0})), E, ValueError, r"negative value -1.0 at ID 2"),
    "long: unsorted time": (lambda: from_long(long_table({("TIME", 2): 0.1})), E, ValueError, r"not sorted"),
    "long: text time": (lambda: from_long(long_table({("TIME", 2): "2h"})), E, ValueError, r"non-numeric value '2h'"),
    "long: BLQ text in DV": (lambda: from_long(long_table({("DV", 2): "BLQ"})), E, ValueError, r"'BLQ' at ID 1"),
    "long: zero dose": (lambda: from_long(long_table({("AMT", 3): 0.0})), E, ValueError, r"'AMT' has value 0.0 on a dose row at ID 2"),
    "long: dose amount on observation": (lambda: from_long(long_table({("AMT", 4): 5.0})), E, ValueError, r"on an observation row .*ID 2"),
    "long: unknown EVID": (lambda: from_long(long_table({("EVID", 4): 9})), E, ValueError, r"unknown EVID 9 at ID 2"),
    "long: value on a reset row": (lambda: from_long(long_table({("EVID", 4): 3})), E, ValueError, r"'DV' has value 2.0 on a dose-event row \(EVID 1, 3 or 4\) at ID 2"),
    "long: modelled rate": (lambda: from_long(long_table().assign(RATE=[-1, 0, 0, 0, 0, 0])), E, ValueError, r"'RATE' has value -1 at ID 1 \(row 0\); RATE -1 asks for a rate modelled"),
    "long: CENS -1": (lambda: from_long(long_table().assign(CENS=[0, -1, 0, 0, 0, 0])), E, ValueError, r"'CENS' has value -1 at ID 1 \(row 1\); censoring above an upper limit"),
    "long: MDV 2": (lambda: from_long(long_table({("MDV", 4): 2})), E, ValueError, r"'MDV' has value 2 at ID 2"),
    "long: missing DV with MDV 0": (lambda: from_long(long_table({("DV", 4): np.nan})), E, ValueError, r"'DV' is missing at ID 2 .* 'MDV' is 0"),
    "long: DV on a dose row": (lambda: from_long(long_table({("DV", 3): 5.0}).drop(columns="MDV")), E, ValueError, r"on a dose-event row \(EVID 1, 3 or 4\) at ID 2"),
    "long: duplicated dose row": (lambda: from_long(pd.concat([long_table().iloc[:4], long_table().iloc[3:]]).reset_index(drop=True)), E, ValueError, r"duplicate dose row.*ID 2"),
    "long: IDs 1 and '1'": (lambda: from_long(long_table().assign(ID=[1, 1, 1, "1", "1", "1"])), E, ValueError, r"IDs 1 .* and '1'"),
    "long: split ID blocks": (lambda: from_long(long_table().assign(ID=[1, 2, 1, 2, 2, 2])), E, ValueError, r"separate blocks"),
    "long: duplicate observation": (lambda: from_long(long_table({("TIME", 5): 1.0})), E, ValueError, r"duplicate observation at time 1.0 for ID 2"),
    "long: time-varying covariate": (lambda: from_long(long_table({("WT", 5): 61.0}), covariates=["WT"]), E, ValueError, r"'WT' is not constant within ID 2"),
    "long: covariate not a column": (lambda: from_long(long_table(), covariates=["AGE"]), E, ValueError, r"'AGE' is not a column"),
    "long: ADDL without II": (lambda: from_long(long_table().assign(ADDL=[2, 0, 0, 0, 0, 0])), E, ValueError, r"'ADDL' has value 2 at ID 1 \(row 0\); additional doses \(ADDL\) need II > 0"),
    "long: no DV column": (lambda: from_long(long_table().drop(columns="DV")), E, ValueError, r"no column 'DV'"),
    "long: dose rows without AMT": (lambda: from_long(long_table().drop(columns="AMT")), E, ValueError, r"no AMT column"),
    "long: no observation for an ID": (lambda: from_long(long_table().assign(EVID=[1, 0, 0, 1, 2, 2])), E, ValueError, r"ID 2 has no observation"),
    "long: empty": (lambda: from_long(long_table().iloc[:0]), E, ValueError, r"no rows"),
    "long: not a DataFrame": (lambda: from_long(long_table().to_numpy()), E, TypeError, r"DataFrame"),
    "long: unread extra column": (lambda: from_long(long_table()), W, UserWarning, r"\['WT'\] of the long table are not read"),
    # ---------------------------------------------------------- records/tables
    "records: values and times differ": (lambda: IndividualRecords([0.0, 1.0], [1.0]), E, ValueError, r"n_obs=2"),
    "records: dose times and amounts differ": (lambda: IndividualRecords([0.0], [1.0], [0.0, 1.0], [1.0]), E, ValueError, r"same length"),
    "table: duplicate IDs": (lambda: make_individuals([rec(), rec()], ids=[3, 3]), E, ValueError, r"ID 3 appears more than once"),
    "table: not records": (lambda: validate_individuals(pd.DataFrame({"records": [1.0]})), E, TypeError, r"not IndividualRecords"),
    "table: no records column": (lambda: validate_individuals(pd.DataFrame({"WT": [1.0]})), E, ValueError, r"no 'records' column"),
    "table: ndarray": (lambda: as_study(np.ones((3, 2))), E, TypeError, r"individuals DataFrame"),
    "table: unsorted times": (lambda: validate_individuals(make_individuals([rec(times=(1.0, 0.5))], ids=[4])), E, ValueError, r"individual 4: observation times must be strictly increasing"),
    "table: negative dose": (lambda: validate_individuals(make_individuals([rec(amounts=(-1.0,))], ids=[4])), E, ValueError, r"individual 4: dose amount -1.0"),
    "table: infinite value": (lambda: validate_individuals(make_individuals([rec(values=(1.0, np.inf))], ids=[4])), E, ValueError, r"individual 4: has an infinite"),
    "table: all values missing": (lambda: validate_individuals(make_individuals([rec(values=(np.nan, np.nan))], ids=[4])), E, ValueError, r"individual 4: has no observed value"),
    "table: mixed outputs": (lambda: validate_individuals(make_individuals([rec(), IndividualRecords([0.0], [[1.0, 2.0]])])), E, ValueError, r"individual 2: has 2 outputs"),
    "arrays: times and values differ": (lambda: from_arrays(np.ones((2, 3)), np.arange(4.0)), E, ValueError, r"time points"),
    "padded: shapes disagree": (lambda: fixed_design([1.0, 2.0], 3).replace(values=np.ones((3, 5, 1))), E, ValueError, r"values has shape"),
    "padded: float masks": (lambda: Padded(np.zeros((1, 1)), np.zeros((1, 1, 1)), np.ones((1, 1)), np.zeros((1, 0)), np.zeros((1, 0)), np.zeros((1, 0), bool)), E, TypeError, r"obs_mask must be a boolean"),
    # ------------------------------------------------------------------ models
    "model: unknown name": (lambda: get_model("two-compartment-x"), E, ValueError, r"unknown model 'two-compartment-x'"),
    "model: unknown error model": (lambda: ErrorModel("poisson"), E, ValueError, r"unknown error model 'poisson'"),
    "model: bad prior covariance": (lambda: OneCompartmentOral(prior_cov=-np.ones(4)), E, ValueError, r"positive definite"),
    "model: prior mean of wrong size": (lambda: OneCompartmentOral(prior_mean=[0.0, 1.0]), E, ValueError, r"prior_mean must have 4 entries"),
    "model: function not callable": (lambda: FunctionModel(3.0, ["a"], [0.0, 0.0], [1.0, 1.0], times=[1.0]), E, TypeError, r"func must be callable"),
    "model: decreasing design times": (lambda: LinearGaussian(times=[1.0, 0.5]), E, ValueError, r"strictly increasing"),
    "model: phi of wrong shape": (lambda: _MODEL.log_likelihood(np.zeros((12, 1, 3)), _X), E, ValueError, r"phi must have shape \(12, n_draws, 2\)"),
    "model: no dose for oral model": (lambda: OneCompartmentOral().simulate(design=make_individuals([IndividualRecords([1.0], [1.0])])), E, ValueError, r"no dose"),
    "model: wrong number of outputs": (lambda: OneCompartmentOral().prepare(make_individuals([IndividualRecords([0.0], [[1.0, 2.0]], [0.0], [1.0])], ids=[8])), E, ValueError, r"individual 8 has 2 outputs, but model 'one-compartment-oral' has 1"),
    # -------------------------------------------------------------- estimator
    "estimator: n_starts=True": (lambda: fit(n_starts=True), E, InvalidParameterError, r"n_starts"),
    "estimator: n_samples=2.7": (lambda: NLMEPopulationEstimator(_POST, n_samples=2.7).fit(_X), E, InvalidParameterError, r"n_samples"),
    "estimator: n_jobs='two'": (lambda: fit(n_jobs="two"), E, InvalidParameterError, r"n_jobs"),
    "estimator: verbose='x'": (lambda: fit(verbose="x"), E, InvalidParameterError, r"verbose"),
    "estimator: bounds as list": (lambda: fit(bounds=[1, 2]), E, InvalidParameterError, r"bounds"),
    "estimator: covariance='full'": (lambda: fit(covariance="full"), E, InvalidParameterError, r"covariance"),
    "estimator: likelihood='exact'": (lambda: fit(likelihood="exact"), E, InvalidParameterError, r"likelihood"),
    "estimator: negative variance floor": (lambda: fit(variance_floor=-1.0), E, InvalidParameterError, r"variance_floor"),
    "estimator: unknown random effect": (lambda: fit(random_effects=["theta9"]), E, ValueError, r"theta9"),
    "estimator: unknown fixed parameter": (lambda: fit(fixed={"nope": 1.0}), E, ValueError, r"nope"),
    "estimator: covariate not a column": (lambda: fit(covariates={"WT": ["theta0"]}), E, ValueError, r"covariate 'WT' is not a column"),
    "estimator: unfitted posterior": (lambda: NLMEPopulationEstimator(ExactGaussianPosterior(_MODEL)).fit(_X), E, Exception, r"not fitted"),
    "estimator: predict before fit": (lambda: NLMEPopulationEstimator(_POST).predict(_X), E, Exception, r"not fitted"),
    "estimator: score on other columns": (lambda: fitted().score(_X.assign(AGE=1.0)), E, ValueError, r"feature names"),
    "estimator: profile of unknown parameter": (lambda: fitted().profile(["theta7"]), E, ValueError, r"theta7"),
    "estimator: profile confidence 1.5": (lambda: fitted().profile(confidence=1.5), E, ValueError, r"confidence"),
    # ------------------------------------------------------------ objectives
    "objective: non-finite draw": (lambda: PopulationObjective(np.full((2, 3, 1), np.nan), np.zeros((2, 3)), ["a"]), E, ValueError, r"non-finite value nan for individual row 0"),
    "objective: offsets of wrong shape": (lambda: PopulationObjective(np.zeros((2, 3, 1)), np.zeros((2, 4)), ["a"]), E, ValueError, r"log_offsets must have shape \(2, 3\)"),
    "objective: names and draws differ": (lambda: PopulationObjective(np.zeros((2, 3, 2)), np.zeros((2, 3)), ["a"]), E, ValueError, r"2 parameters but param_names has 1"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_named(name):
    call, kind, kind_type, pattern = CASES[name]
    before = copy.deepcopy(_X)
    if kind == E:
        with pytest.raises(kind_type, match=pattern):
            call()
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error", kind_type)
            with pytest.raises(kind_type, match=pattern):
                call()
    pd.testing.assert_frame_equal(_X.drop(columns="records"), before.drop(columns="records"))


def test_catalogue_size():
    # issue 11 asks for at least 60 classified cases (files are catalogued with the posterior)
    assert len(CASES) >= 60
