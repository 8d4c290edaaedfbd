"""Long (NONMEM-style) tables <-> individuals tables."""

import copy

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sknlme.data import IndividualRecords, from_long, make_individuals, to_long

# ---------------------------------------------------------------- round trips

finite = st.floats(0.0, 100.0, allow_nan=False, allow_infinity=False)
amounts = st.floats(0.01, 1000.0, allow_nan=False, allow_infinity=False)


@st.composite
def individuals_tables(draw):
    n = draw(st.integers(1, 4))
    k = draw(st.integers(1, 2))
    records = []
    for _ in range(n):
        times = sorted(draw(st.lists(finite, min_size=1, max_size=5, unique=True)))
        cells = draw(
            st.lists(
                st.one_of(st.none(), st.floats(-50, 50, allow_nan=False)),
                min_size=len(times) * k,
                max_size=len(times) * k,
            )
        )
        values = np.array([np.nan if v is None else v for v in cells]).reshape(len(times), k)
        keep = draw(st.integers(0, values.size - 1))
        values.flat[keep] = draw(st.floats(-50, 50, allow_nan=False))  # >= 1 observed value
        n_doses = draw(st.integers(0, 3))
        dose_times = sorted(
            draw(
                st.lists(
                    st.one_of(st.sampled_from(times), finite), min_size=n_doses, max_size=n_doses
                )
            )
        )
        doses = draw(st.lists(amounts, min_size=n_doses, max_size=n_doses))
        # a dose row repeated exactly is refused by from_long (a data error in NONMEM files)
        assume(len(set(zip(dose_times, doses, strict=True))) == n_doses)
        records.append(IndividualRecords(times, values, dose_times, doses))
    if draw(st.booleans()):
        ids = [f"s{i:02d}" for i in draw(st.permutations(range(n)))]
    else:
        ids = draw(st.lists(st.integers(-5, 1000), min_size=n, max_size=n, unique=True))
    covariates = {
        "WT": draw(st.lists(st.floats(30, 120, allow_nan=False), min_size=n, max_size=n)),
        "SEX": draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)),
    }
    return make_individuals(records, ids=ids, covariates=covariates)


def assert_same_individuals(Y, X):
    pd.testing.assert_index_equal(Y.index, X.index)
    pd.testing.assert_frame_equal(Y.drop(columns="records"), X.drop(columns="records"))
    for ident in X.index:
        assert Y.loc[ident, "records"] == X.loc[ident, "records"], ident


@settings(max_examples=60, deadline=None)
@given(individuals_tables())
def test_long_round_trip(X):
    before = copy.deepcopy(X)
    long = to_long(X)
    assert_same_individuals(from_long(long, covariates=["WT", "SEX"]), X)
    # and the other way: a canonical long table is reproduced exactly
    pd.testing.assert_frame_equal(to_long(from_long(long, covariates=["WT", "SEX"])), long)
    assert_same_individuals(X, before)  # not mutated


def test_to_long_layout():
    rec = IndividualRecords([0.0, 2.0], [[1.0, np.nan], [3.0, 4.0]], [0.0, 1.0], [10.0, 5.0])
    X = make_individuals([rec], ids=[3], covariates={"WT": [70.0]})
    long = to_long(X, outputs=[2, 3])
    assert list(long.columns) == ["ID", "TIME", "DV", "AMT", "EVID", "MDV", "CMT", "WT"]
    assert long["TIME"].tolist() == [0.0, 0.0, 0.0, 1.0, 2.0, 2.0]
    assert long["EVID"].tolist() == [1, 0, 0, 1, 0, 0]
    assert long["MDV"].tolist() == [1, 0, 1, 1, 0, 0]
    # dose rows: CMT 0, NONMEM's code for the default dose compartment
    assert long["CMT"].tolist() == [0, 2, 3, 0, 2, 3]
    assert long["AMT"].tolist() == [10.0, 0.0, 0.0, 5.0, 0.0, 0.0]
    assert_same_individuals(from_long(long, outputs=[2, 3], covariates=["WT"]), X)
    with pytest.raises(ValueError, match="clash"):
        to_long(make_individuals([rec], covariates={"DV": [1.0]}))


# ------------------------------------------------------------------- features


def test_case_insensitive_and_inferred_evid():
    df = pd.DataFrame(
        {
            "id": [5, 5, 5, 2, 2],
            "time": [0.0, 0.0, 1.0, 0.0, 4.0],
            "dv": [np.nan, 0.3, 2.0, np.nan, 1.0],
            "amt": [100.0, 0.0, 0.0, 50.0, 0.0],
            "wt": [70, 70, 70, 80, 80],
        }
    )
    X = from_long(df, covariates=["wt"])
    assert list(X.index) == [5, 2] and X.index.dtype == np.int64  # order of first appearance
    assert list(X.columns) == ["wt", "records"]
    rec = X.loc[5, "records"]
    assert rec.times.tolist() == [0.0, 1.0]  # dose and observation both at time 0
    assert rec.dose_times.tolist() == [0.0] and rec.dose_amounts.tolist() == [100.0]


def test_minimal_columns_and_missing_values():
    df = pd.DataFrame({"ID": ["b", "b", "a"], "TIME": [1.0, 2.0, 3.0], "DV": [1.0, np.nan, "."]})
    df.loc[2, "DV"] = 7.0
    X = from_long(df)
    assert list(X.index) == ["b", "a"] and X.index.dtype == df["ID"].dtype
    assert np.isnan(X.loc["b", "records"].values[1, 0])
    assert X.loc["b", "records"].n_doses == 0


def test_mdv_evid2_and_outputs():
    df = pd.DataFrame(
        {
            "ID": [1] * 6,
            "TIME": [0.0, 0.5, 1.0, 1.0, 2.0, 3.0],
            "DV": [0.0, 9.0, 1.0, 2.0, 5.0, 6.0],
            "AMT": [10.0, 0, 0, 0, 0, 0],
            "EVID": [1, 2, 0, 0, 0, 0],
            "MDV": [1, 1, 0, 0, 1, 0],
            "CMT": [1, 1, 2, 3, 2, 3],
            "SEX": ["F"] * 6,
        }
    )
    rec = from_long(df, covariates=[]).loc[1, "records"]
    assert rec.times.tolist() == [1.0, 2.0, 3.0]  # EVID 2 at 0.5 makes no record
    np.testing.assert_array_equal(rec.values, [[1.0, 2.0], [np.nan, np.nan], [np.nan, 6.0]])
    swapped = from_long(df, outputs={3: 0, 2: 1}, covariates=[]).loc[1, "records"]
    np.testing.assert_array_equal(swapped.values, rec.values[:, ::-1])
    assert from_long(df, covariates=["SEX"]).loc[1, "SEX"] == "F"
    assert list(from_long(df, covariates=[]).columns) == ["records"]
    with pytest.raises(ValueError, match="column 'CMT' has value 3 at ID 1 \\(row 3\\)"):
        from_long(df, outputs=[2])


# ---------------------------------------------------------------------- errors


def base():
    return pd.DataFrame(
        {
            "ID": [1, 1, 1, 2, 2, 2],
            "TIME": [0.0, 0.0, 1.0, 0.0, 0.5, 2.0],
            "DV": [np.nan, 1.0, 2.0, np.nan, 3.0, 4.0],
            "AMT": [100.0, 0, 0, 50.0, 0, 0],
            "EVID": [1, 0, 0, 1, 0, 0],
            "MDV": [1, 0, 0, 1, 0, 0],
            "CMT": [1, 1, 1, 1, 1, 1],
            "WT": [70.0, 70.0, 70.0, 80.0, 80.0, 80.0],
        }
    )


def edit(column, row, value, dtype=None):
    df = base()
    if dtype is not None:
        df[column] = df[column].astype(dtype)
    df.loc[row, column] = value
    return df


CASES = [
    (edit("ID", 4, np.nan, float), r"column 'ID' is missing \(NaN\) at row 4"),
    (edit("TIME", 4, -0.5), r"'TIME' has negative value -0.5 at ID 2 \(row 4\)"),
    (edit("TIME", 5, 0.2), r"'TIME' is not sorted .*0.2 at ID 2 \(row 5\) comes after 0.5"),
    (edit("TIME", 2, "1h", object), r"'TIME' has non-numeric value '1h' at ID 1 \(row 2\)"),
    (edit("TIME", 2, np.nan), r"'TIME' has invalid value nan at ID 1 \(row 2\)"),
    (edit("TIME", 5, 0.5), r"duplicate observation of CMT 1 at time 0.5 for ID 2 \(row 5\)"),
    (edit("DV", 2, "BLQ", object), r"'DV' has non-numeric value 'BLQ' at ID 1 \(row 2\)"),
    (edit("AMT", 3, 0.0), r"'AMT' has value 0.0 on a dose row at ID 2 \(row 3\)"),
    (edit("AMT", 3, np.nan), r"'AMT' has value nan on a dose row at ID 2 \(row 3\)"),
    (edit("AMT", 3, -5.0), r"'AMT' has value -5.0 on a dose row at ID 2 \(row 3\)"),
    (edit("AMT", 4, 5.0), r"'AMT' has value 5.0 on an observation row .* ID 2 \(row 4\)"),
    (edit("EVID", 4, 7), r"'EVID' has unknown EVID 7 at ID 2 \(row 4\)"),
    # an observation row turned into a reset (EVID 3) or reset-and-dose (EVID 4) row
    (edit("EVID", 4, 3), r"'DV' has value 3.0 on a dose-event row \(EVID 1, 3 or 4\) at ID 2"),
    (edit("EVID", 4, 4), r"'AMT' has value 0.0 on a dose row at ID 2 \(row 4\)"),
    (edit("MDV", 4, 2), r"'MDV' has value 2 at ID 2 \(row 4\); expected 0 or 1"),
    (edit("WT", 5, 81.0), r"covariate 'WT' is not constant within ID 2: values \[80.0, 81.0\]"),
    (edit("ID", 5, 1), r"ID 1 appears in separate blocks of rows \(starting at row 0, row 5\)"),
    (edit("CMT", 4, np.nan), r"'CMT' is missing on observation at ID 2 \(row 4\)"),
    (base().assign(EVID=[1, 0, 0, 1, 2, 2]), r"ID 2 has no observation row"),
    (
        base().assign(ADDL=[0, 0, 0, 3, 0, 0]),
        r"'ADDL' has value 3 at ID 2 \(row 3\); additional doses \(ADDL\) need II > 0",
    ),
    (base().drop(columns="DV"), r"no column 'DV'"),
    # data that NONMEM would read differently from what they seem to say: refused
    (
        pd.concat([base().iloc[:4], base().iloc[3:]]).reset_index(drop=True),
        r"duplicate dose row: AMT 50.0 at time 0.0 for ID 2 \(row 4\) repeats row 3",
    ),
    (edit("ID", 3, "2", object).assign(ID=[1, 1, 1, "2", 2, 2]), r"IDs '2' \(row 3\) and 2"),
    (edit("DV", 4, np.nan), r"'DV' is missing at ID 2 \(row 4\) but 'MDV' is 0"),
    (
        edit("DV", 3, 7.5).drop(columns="MDV"),
        r"'DV' has value 7.5 on a dose-event row \(EVID 1, 3 or 4\) at ID 2 \(row 3\)",
    ),
    (base().drop(columns="AMT"), r"dose rows \(EVID 1\) but no AMT column"),
    (base().iloc[:0], r"no rows"),
]


@pytest.mark.parametrize(("df", "match"), CASES)
def test_bad_long_tables(df, match):
    before = copy.deepcopy(df)
    with pytest.raises(ValueError, match=match):
        from_long(df, covariates=[c for c in ("WT",) if c in df.columns])
    pd.testing.assert_frame_equal(df, before)


def test_dose_row_dv_of_zero_or_with_mdv_1_is_ignored():
    # NONMEM files often carry DV 0 on dose rows, or any DV with MDV 1: not observations
    zero = from_long(edit("DV", 3, 0.0), covariates=["WT"])
    ignored = from_long(edit("DV", 3, 7.5).assign(MDV=[1, 0, 0, 1, 0, 0]), covariates=["WT"])
    for X in (zero, ignored):
        assert X.loc[2, "records"] == from_long(base(), covariates=["WT"]).loc[2, "records"]


def test_same_time_doses_in_two_compartments_are_kept():
    df = pd.concat([base().iloc[:4], base().iloc[3:]]).reset_index(drop=True)
    df.loc[4, "CMT"] = 2
    assert from_long(df, covariates=["WT"]).loc[2, "records"].n_doses == 2


def test_index_label_names_row():
    df = base()
    df.index = pd.Index(range(10, 16), name="line")
    df["DV"] = df["DV"].astype(object)
    df.loc[12, "DV"] = "BLQ"
    with pytest.raises(ValueError, match=r"'BLQ' at ID 1 \(line 12\)"):
        from_long(df, covariates=["WT"])


def test_valid_input_not_mutated_and_zero_rate_ignored():
    df = base().assign(RATE=0.0, ii=np.nan)
    before = copy.deepcopy(df)
    X = from_long(df, covariates=["WT"])
    pd.testing.assert_frame_equal(df, before)
    assert list(X.columns) == ["WT", "records"]  # RATE/II are not covariates
    # the CMT of the dose row is its compartment
    expected = IndividualRecords([0.0, 1.0], [1.0, 2.0], [0.0], [100.0], dose_cmt=[1])
    assert X.loc[1, "records"] == expected


def test_more_edge_cases():
    df = pd.DataFrame({"ID": [1, 1, 1], "TIME": [0.0, 1.0, 1.0], "DV": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match=r"duplicate observation at time 1.0 for ID 1 \(row 2\)"):
        from_long(df)
    # as in NONMEM, a missing MDV ('.') reads as 0; a missing DV is still a missing value
    df = pd.DataFrame({"ID": [1, 1], "TIME": [0.0, 1.0], "DV": [2.0, np.nan], "MDV": [".", "."]})
    assert from_long(df).loc[1, "records"] == IndividualRecords([0.0, 1.0], [2.0, np.nan])
    with pytest.raises(TypeError, match="DataFrame"):
        from_long(df.to_numpy())
    X = from_long(df)
    with pytest.raises(ValueError, match="2 CMT values in outputs for 1 outputs"):
        to_long(X, outputs=[1, 2])


def test_only_named_columns_become_covariates():
    # ordinary NONMEM files carry time-varying extra columns (TAD): not read unless named
    df = base().assign(TAD=[0.0, 0.0, 1.0, 0.0, 0.5, 2.0])
    with pytest.warns(UserWarning, match=r"columns \['WT', 'TAD'\] of the long table are not"):
        X = from_long(df)
    assert list(X.columns) == ["records"]
    assert list(from_long(df, covariates=["WT"]).columns) == ["WT", "records"]
    with pytest.raises(ValueError, match="'TAD' is not constant within ID 1"):
        from_long(df, covariates=["TAD"])
