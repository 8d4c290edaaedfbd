"""from_arrays: wide arrays -> individuals table."""

import numpy as np
import pytest

from sknlme.data import IndividualRecords, from_arrays, to_padded


def test_shared_times_and_doses_multi_output():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3, 4, 2))
    values[1, 2, 0] = np.nan
    times = [0.5, 1.0, 2.0, 4.0]
    X = from_arrays(
        values,
        times,
        dose_times=[0.0, 3.0],
        dose_amounts=[10.0, 5.0],
        covariates={"WT": [60.0, 70.0, 80.0]},
        ids=["a", "b", "c"],
    )
    assert list(X.index) == ["a", "b", "c"] and X["WT"].tolist() == [60.0, 70.0, 80.0]
    rec = X.loc["b", "records"]
    assert rec == IndividualRecords(times, values[1], [0.0, 3.0], [10.0, 5.0])
    np.testing.assert_array_equal(to_padded(X).values, values)


def test_ragged_times_and_padded_doses():
    values = np.array([[1.0, 2.0, 3.0], [4.0, np.nan, np.nan]])
    times = np.array([[0.0, 1.0, 2.0], [0.5, np.nan, np.nan]])
    doses_t = np.array([[0.0, 1.5, np.nan], [0.0, 0.0, 0.0]])
    doses_a = np.array([[1.0, 2.0, np.nan], [3.0, 0.0, np.nan]])
    X = from_arrays(values, times, dose_times=doses_t, dose_amounts=doses_a)
    assert list(X.index) == [1, 2]
    assert X.loc[1, "records"] == IndividualRecords([0, 1, 2], [1, 2, 3], [0, 1.5], [1, 2])
    assert X.loc[2, "records"] == IndividualRecords([0.5], [4.0], [0.0], [3.0])
    assert X.loc[2, "records"].n_obs == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"times": [[0, 1], [0, np.nan]], "values": [[1, 2], [3, 4]]},
            r"individual 2: value at time point 1 has no time",
        ),
        ({"times": [1.0, 0.5], "values": [[1, 2]]}, r"individual 1: .*strictly increasing"),
        (
            {
                "times": [0.0, 1.0],
                "values": [[1, 2]],
                "dose_times": [np.nan],
                "dose_amounts": [4.0],
            },
            r"individual 1: dose 0 of amount 4.0 has no time",
        ),
        (
            {"times": [0.0, 1.0], "values": [[1, 2]], "dose_times": [0.0], "dose_amounts": [-4.0]},
            r"individual 1: dose amount -4.0 is not a positive",
        ),
        ({"times": [0.0, 1.0], "values": [[1, 2]], "dose_times": [0.0]}, "both dose_times"),
        ({"times": [0.0, 1.0, 2.0], "values": [[1, 2]]}, "times have 3 time points"),
        ({"times": [0.0], "values": [1.0]}, "values must have shape"),
        ({"times": [0.0], "values": [[1.0]], "ids": [1, 2]}, r"ids must have shape \(1,\)"),
    ],
)
def test_from_arrays_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        from_arrays(**kwargs)


def test_inputs_not_mutated():
    values = np.array([[1.0, np.nan]])
    times = np.array([0.0, 1.0])
    from_arrays(values, times)
    np.testing.assert_array_equal(values, [[1.0, np.nan]])
    np.testing.assert_array_equal(times, [0.0, 1.0])
