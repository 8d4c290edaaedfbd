"""IndividualRecords, make_individuals, check_individuals, padded arrays, validation."""

import numpy as np
import pandas as pd
import pytest

from sknlme.data import (
    IndividualRecords,
    check_individuals,
    covariate_columns,
    from_padded,
    make_individuals,
    to_padded,
    validate_individuals,
)


def _rec(times=(0.0, 1.0), values=(1.0, 0.5), dose_times=(), dose_amounts=()):
    return IndividualRecords(times, values, dose_times, dose_amounts)


def test_records_are_read_only_copies():
    times = np.array([0.0, 1.0])
    rec = IndividualRecords(times, [[1.0, 2.0], [3.0, np.nan]], [0.0], [5.0])
    times[0] = 99.0
    assert rec.times[0] == 0.0
    assert rec.values.shape == (2, 2) and rec.n_outputs == 2 and rec.n_doses == 1
    with pytest.raises(ValueError, match="read-only"):
        rec.times[0] = 1.0
    assert rec == IndividualRecords([0, 1], [[1, 2], [3, np.nan]], [0], [5])
    assert rec != IndividualRecords([0, 1], [[1, 2], [3, 4]], [0], [5])


def test_records_shape_errors():
    with pytest.raises(ValueError, match="n_obs=2"):
        IndividualRecords([0.0, 1.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="same length"):
        IndividualRecords([0.0], [1.0], [0.0, 1.0], [1.0])


def test_make_and_check_individuals():
    X = make_individuals([_rec(), _rec()], ids=["a", "b"], covariates={"WT": [60.0, 70.0]})
    assert X.index.name == "ID" and list(X.index) == ["a", "b"]
    assert covariate_columns(X) == ["WT"]
    assert check_individuals(X)[1] is X.loc["b", "records"]
    with pytest.raises(ValueError, match="'a' appears more than once"):
        make_individuals([_rec(), _rec()], ids=["a", "a"])
    bad = X.copy()
    bad["records"] = [_rec(), "oops"]
    with pytest.raises(TypeError, match="individual 'b'.*str"):
        check_individuals(bad)
    with pytest.raises(TypeError, match="DataFrame"):
        check_individuals(np.zeros((2, 2)))


def test_padded_round_trip():
    recs = [_rec((0.0, 1.0, 3.0), (1.0, np.nan, 2.0), (0.0, 2.0), (1.0, 2.0)), _rec((0.5,), (4,))]
    X = make_individuals(recs, ids=[10, 20])
    padded = to_padded(X)
    assert padded.obs_mask.tolist() == [[True, True, True], [True, False, False]]
    assert padded.dose_mask.tolist() == [[True, True], [False, False]]
    back = from_padded(padded, ids=X.index)
    assert all(a == b for a, b in zip(back["records"], X["records"], strict=True))


@pytest.mark.parametrize(
    ("rec", "match"),
    [
        (_rec((1.0, 0.5)), "individual 5: observation times must be strictly increasing"),
        (_rec((0.0, 0.0)), "individual 5: observation times must be strictly increasing"),
        (_rec((-1.0, 0.5)), "individual 5: observation time -1.0 is negative"),
        (_rec((0.0, np.inf)), "individual 5: observation time inf is not finite"),
        (_rec((0.0, 1.0), (np.nan, np.nan)), "individual 5: has no observed value"),
        (_rec(times=(), values=np.empty((0, 1))), "individual 5: has no observation record"),
        (_rec(dose_times=(0.0,), dose_amounts=(-2.0,)), "dose amount -2.0 is not a positive"),
        (_rec(dose_times=(-1.0,), dose_amounts=(2.0,)), "dose time -1.0 is not a finite"),
        (_rec(dose_times=(2.0, 1.0), dose_amounts=(2.0, 1.0)), "dose times must be sorted"),
    ],
)
def test_validate_individuals_errors(rec, match):
    X = make_individuals([_rec(), rec], ids=[4, 5])
    with pytest.raises(ValueError, match=match):
        validate_individuals(X)


def test_validate_individuals_outputs_and_ids():
    two = _rec(values=[[1.0, 2.0], [3.0, 4.0]])
    X = make_individuals([_rec(), two], ids=[1, 2])
    with pytest.raises(ValueError, match="individual 2: has 2 outputs, expected 1"):
        validate_individuals(X)
    with pytest.raises(ValueError, match="individual 1: has 1 outputs, expected 2"):
        validate_individuals(X, n_outputs=2)
    dup = pd.concat([X.iloc[:1], X.iloc[:1]])
    with pytest.raises(ValueError, match="ID 1 appears more than once"):
        validate_individuals(dup)
    empty_values = make_individuals([_rec(values=[np.nan, np.nan])])
    assert len(validate_individuals(empty_values, require_values=False)) == 1
