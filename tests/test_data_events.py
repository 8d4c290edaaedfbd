"""NONMEM event records (RATE, DUR, ADDL, II, SS, CMT, EVID 3/4) and censoring in from_long."""

import copy

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sknlme.data import IndividualRecords, from_long, make_individuals, read_nonmem, to_long


def table(rows, columns="ID TIME DV AMT EVID MDV"):
    """Long table from rows of numbers (None: blank)."""
    return pd.DataFrame(rows, columns=columns.split())


def records(df, **kwargs):
    X = from_long(df, covariates=[], **kwargs)
    return X.iloc[0]["records"]


def doses(rec):
    return {
        "t": rec.dose_times.tolist(),
        "amt": rec.dose_amounts.tolist(),
        "dur": rec.dose_durations.tolist(),
        "cmt": rec.dose_cmt.tolist(),
        "ss": rec.dose_ss.tolist(),
        "ii": rec.dose_ii.tolist(),
        "reset": rec.dose_reset.tolist(),
    }


# ------------------------------------------------------------------- ADDL / II


def test_addl_expansion_matches_the_nonmem_help_example():
    """The two fragments of NONMEM's ADDL help page specify the same doses: 10, 20, 22, 34."""
    cols = "ID TIME DV AMT ADDL II"
    compact = table(
        [[1, 10, None, 15, 2, 12], [1, 15, 25.7, None, None, None], [1, 20, None, 10, 0, 0]]
        + [[1, 36, 30.2, None, None, None]],
        cols,
    )
    explicit = table(
        [[1, 10, None, 15, 0, 0], [1, 15, 25.7, None, None, None], [1, 20, None, 10, 0, 0]]
        + [[1, 22, None, 15, 0, 0], [1, 34, None, 15, 0, 0], [1, 36, 30.2, None, None, None]],
        cols,
    )
    rec = records(compact)
    assert rec.dose_times.tolist() == [10.0, 20.0, 22.0, 34.0]
    assert rec.dose_amounts.tolist() == [15.0, 10.0, 15.0, 15.0]
    assert rec == records(explicit)
    assert rec.dosing_features == frozenset()  # plain boluses


def test_additional_doses_copy_duration_and_compartment():
    df = table(
        [[1, 0, None, 100, 1, 1, 50, 2, 2, 24], [1, 1, 3.0, None, 0, 0, None, 1, None, None]],
        "ID TIME DV AMT EVID MDV RATE CMT ADDL II",
    )
    assert doses(records(df)) == {
        "t": [0.0, 24.0, 48.0],
        "amt": [100.0] * 3,
        "dur": [2.0] * 3,
        "cmt": [2] * 3,
        "ss": [0] * 3,
        "ii": [0.0] * 3,
        "reset": [False] * 3,
    }


def test_reset_and_ss1_cancel_pending_additional_doses():
    """NONMEM: an SS=1 dose (and a reset) cancels pending additional doses."""
    cols = "ID TIME DV AMT EVID MDV ADDL II SS"
    df = table(
        [
            [1, 0, None, 10, 1, 1, 5, 12, 0],  # would give 12, 24, 36, 48, 60
            [1, 1, 2.0, None, 0, 0, None, None, None],
            [1, 30, None, None, 3, 1, None, None, None],  # reset: 36.. cancelled
            [1, 40, None, 20, 1, 1, 3, 8, 0],  # 48, 56, 64
            [1, 56, None, 5, 1, 1, 0, 8, 1],  # SS=1 at 56: 56 (from 40) and 64 cancelled
        ],
        cols,
    )
    got = doses(records(df))
    assert got["t"] == [0.0, 12.0, 24.0, 30.0, 40.0, 48.0, 56.0]
    assert got["amt"] == [10.0, 10.0, 10.0, 0.0, 20.0, 20.0, 5.0]
    assert got["reset"] == [False, False, False, True, False, False, False]
    assert got["ss"] == [0, 0, 0, 0, 0, 0, 1] and got["ii"][-1] == 8.0


# ---------------------------------------------------------------- RATE / DUR


def test_rate_dur_and_rate_minus_2_with_dur():
    cols = "ID TIME DV AMT EVID MDV RATE DUR"
    df = table(
        [
            [1, 0, None, 100, 1, 1, 25, None],  # 4 h infusion
            [1, 0, None, 50, 1, 1, 0, None],  # bolus at the same time: not a duplicate
            [1, 6, None, 30, 1, 1, -2, 1.5],  # D1 = DUR idiom
            [1, 9, None, 30, 1, 1, 0, 0.5],  # DUR alone (rxode2)
            [1, 12, 4.0, None, 0, 0, None, None],
        ],
        cols,
    )
    got = doses(records(df))
    assert got["dur"] == [4.0, 0.0, 1.5, 0.5]
    assert records(df).dosing_features == {"infusion"}


@pytest.mark.parametrize(
    ("rate", "dur", "match"),
    [
        (-1, None, r"'RATE' has value -1.0 at ID 7 \(row 0\); RATE -1 asks for a rate modelled"),
        (-2, None, r"'RATE' has value -2.0 at ID 7 \(row 0\); RATE -2 asks for a duration"),
        (-3, None, r"'RATE' has value -3.0 at ID 7 \(row 0\); RATE must be positive"),
        (10, 2.0, r"'DUR' has value 2.0 at ID 7 \(row 0\); the dose has both RATE 10"),
        (0, -1.0, r"'DUR' has value -1.0 at ID 7 \(row 0\); DUR must be non-negative"),
    ],
)
def test_bad_rates_name_id_column_and_row(rate, dur, match):
    df = table(
        [[7, 0, None, 100, 1, 1, rate, dur], [7, 1, 3.0, None, 0, 0, None, None]],
        "ID TIME DV AMT EVID MDV RATE DUR",
    )
    before = copy.deepcopy(df)
    with pytest.raises(ValueError, match=match):
        from_long(df)
    pd.testing.assert_frame_equal(df, before)


# ---------------------------------------------------------------------- SS


def test_steady_state_is_kept_and_its_addl_expanded():
    df = table(
        [[1, 0, None, 100, 1, 1, 1, 12, 2], [1, 30, 3.0, None, 0, 0, None, None, None]],
        "ID TIME DV AMT EVID MDV SS II ADDL",
    )
    got = doses(records(df))
    assert got["t"] == [0.0, 12.0, 24.0]
    assert got["ss"] == [1, 0, 0] and got["ii"] == [12.0, 0.0, 0.0]
    df2 = df.assign(SS=[2, None], ADDL=[0, None])
    assert doses(records(df2))["ss"] == [2]


@pytest.mark.parametrize(
    ("row", "match"),
    [
        (
            {"SS": 1, "II": 0},
            r"'SS' has value 1.0 at ID 1 \(row 0\); a steady-state dose \(SS\) needs II",
        ),
        ({"SS": 3, "II": 12}, r"'SS' has value 3.0 at ID 1 \(row 0\); expected SS 0, 1 or 2"),
        (
            {"SS": 1, "II": 12, "RATE": 5},
            r"'SS' has value 1.0 .*infusion lasts 20.0, longer than its II",
        ),
        (
            {"SS": 1, "II": 0, "RATE": 5, "AMT": 0},
            r"'RATE' has value 5.0 .*steady-state constant infusion",
        ),
        ({"ADDL": 2.5, "II": 12}, r"'ADDL' has value 2.5 .*whole number"),
        ({"ADDL": -1, "II": 12}, r"'ADDL' has value -1.0 .*non-negative"),
    ],
)
def test_bad_steady_state_and_addl(row, match):
    base = {"ID": 1, "TIME": 0, "DV": None, "AMT": 100, "EVID": 1, "MDV": 1}
    base.update({"SS": 0, "II": 0, "ADDL": 0, "RATE": 0}, **row)
    df = pd.DataFrame([base, {"ID": 1, "TIME": 1, "DV": 2.0, "AMT": 0, "EVID": 0, "MDV": 0}])
    with pytest.raises(ValueError, match=match):
        from_long(df)


# -------------------------------------------------------- CMT and EVID 3/4


def test_dose_cmt_and_observation_outputs():
    df = table(
        [
            [1, 0, None, 100, 1, 1, 1],  # depot
            [1, 0, None, 10, 1, 1, None],  # blank: default dose compartment
            [1, 2, None, 50, 1, 1, 2],  # central
            [1, 1, 3.0, None, 0, 0, 2],
            [1, 3, 1.0, None, 0, 0, 3],
        ],
        "ID TIME DV AMT EVID MDV CMT",
    )
    df = df.iloc[[0, 1, 3, 2, 4]].reset_index(drop=True)
    rec = records(df)
    assert rec.dose_cmt.tolist() == [1, 0, 2] and rec.n_outputs == 2
    assert rec.values.tolist() == [[3.0, np.nan], [np.nan, 1.0]] or np.array_equal(
        rec.values, [[3.0, np.nan], [np.nan, 1.0]], equal_nan=True
    )
    bad = df.assign(CMT=[-1, None, 2, 2, 3])
    with pytest.raises(ValueError, match=r"'CMT' has value -1.0 at ID 1 \(row 0\); a dose's CMT"):
        from_long(bad)


def test_reset_events():
    df = table(
        [
            [1, 0, None, 100, 1, 1, 0, 0],
            [1, 1, 3.0, None, 0, 0, None, None],
            [1, 10, None, None, 3, 1, None, None],  # reset only
            [1, 20, None, 80, 4, 1, 1, 12],  # reset and dose; its additional dose is plain
            [1, 40, 2.0, None, 0, 0, None, None],
        ],
        "ID TIME DV AMT EVID MDV ADDL II",
    )
    got = doses(records(df))
    assert got["t"] == [0.0, 10.0, 20.0, 32.0]
    assert got["amt"] == [100.0, 0.0, 80.0, 80.0]
    assert got["reset"] == [False, True, True, False]
    with pytest.raises(
        ValueError, match=r"'AMT' has value 5.0 on a reset-only row \(EVID 3\) at ID 1 \(row 2\)"
    ):
        from_long(df.assign(AMT=[100, None, 5, 80, None]))
    with pytest.raises(ValueError, match=r"'ADDL' has value 1.0 at ID 1 \(row 2\); a reset-only"):
        from_long(df.assign(ADDL=[0, None, 1, 1, None], II=[0, None, 5, 12, None]))


# --------------------------------------------------------------- censoring


def _obs(**columns):
    df = table(
        [
            [1, 0, None, 100, 1, 1],
            [1, 1, 5.0, None, 0, 0],
            [1, 2, 0.1, None, 0, 0],
            [1, 3, None, None, 0, 0],
            [1, 4, None, None, 0, 1],
        ]
    )
    return df.assign(**columns)


def test_cens_column_takes_the_limit_from_dv():
    df = _obs(DV=[None, 5.0, 0.2, 0.2, None], CENS=[None, 0, 1, 1, 0])
    rec = records(df)
    assert rec.censored.ravel().tolist() == [False, True, True, False]
    assert np.array_equal(rec.values.ravel(), [5.0, 0.2, 0.2, np.nan], equal_nan=True)
    # the NONMEM M3 habit: a BLQ flag column, read the same way
    assert records(df.rename(columns={"CENS": "blq"})) == rec
    # LIMIT -inf or blank (M3's lower bound) is accepted; a finite one is interval censoring
    assert records(df.assign(LIMIT=[None, None, -np.inf, None, None])) == rec
    with pytest.raises(ValueError, match=r"'LIMIT' has value 0.0 at ID 1 \(row 2\): censoring in"):
        from_long(df.assign(LIMIT=[None, None, 0.0, None, None]))


def test_lloq_column_censors_below_blq_text_and_blank_with_mdv_0():
    df = _obs(DV=[None, 5.0, 0.1, "BLQ", None], LLOQ=[0.25] * 5)
    rec = records(df)
    assert rec.censored.ravel().tolist() == [False, True, True, False]
    # MDV 1 stays a missing value; censored values are the limit
    assert np.array_equal(rec.values.ravel(), [5.0, 0.25, 0.25, np.nan], equal_nan=True)
    assert records(df.assign(DV=[None, 5.0, 0.1, None, None])) == rec  # blank DV with MDV 0
    # with CENS, the LLOQ column gives the limit (DV often holds 0 on BLQ rows)
    cens = df.assign(DV=[None, 5.0, 0.0, 0.0, None], CENS=[0, 0, 1, 1, 0])
    assert records(cens) == rec
    assert rec.dosing_features == {"censoring"}


@pytest.mark.parametrize(
    ("columns", "match"),
    [
        (dict(CENS=[0, -1, 0, 0, 0]), r"'CENS' has value -1 at ID 1 \(row 1\); censoring above"),
        (dict(CENS=[0, 2, 0, 0, 0]), r"'CENS' has value 2 at ID 1 \(row 1\); expected 0"),
        (dict(CENS=[0, 0, 0, 1, 0]), r"'CENS' marks the observation at ID 1 \(row 3\) .*missing"),
        (dict(LLOQ=[0.1, 0.1, -0.1, 0.1, 0.1]), r"'LLOQ' has value -0.1 at ID 1 \(row 2\)"),
        (dict(DV=[None, 5.0, "BLQ", None, None]), r"'DV' has non-numeric value 'BLQ' at ID 1"),
    ],
)
def test_bad_censoring(columns, match):
    df = _obs(DV=[None, 5.0, 0.1, 1.0, None]).assign(**columns)
    if "CENS" in columns:
        df = df.assign(DV=[None, 5.0, 0.1, None, None]).drop(columns="MDV")
    with pytest.raises(ValueError, match=match):
        from_long(df)


# ------------------------------------------------------------- round trips


@st.composite
def rich_tables(draw):
    recs = []
    for _ in range(draw(st.integers(1, 3))):
        n_obs = draw(st.integers(1, 4))
        times = np.cumsum(draw(st.lists(st.floats(0.1, 5), min_size=n_obs, max_size=n_obs)))
        values = draw(st.lists(st.floats(-5, 5), min_size=n_obs, max_size=n_obs))
        censored = draw(st.lists(st.booleans(), min_size=n_obs, max_size=n_obs))
        n = draw(st.integers(0, 4))
        dose_t = np.cumsum(draw(st.lists(st.floats(0.1, 5), min_size=n, max_size=n)))
        kind = draw(
            st.lists(st.sampled_from(["bolus", "inf", "ss", "ev3", "ev4"]), min_size=n, max_size=n)
        )
        amt = [0.0 if k == "ev3" else draw(st.floats(0.5, 100)) for k in kind]
        dur = [draw(st.floats(0.1, 2)) if k in ("inf", "ss") else 0.0 for k in kind]
        cmt = [0 if k == "ev3" else draw(st.integers(0, 2)) for k in kind]
        ss = [draw(st.sampled_from([1, 2])) if k == "ss" else 0 for k in kind]
        ii = [draw(st.floats(2.0, 24.0)) if k == "ss" else 0.0 for k in kind]
        reset = [k in ("ev3", "ev4") for k in kind]
        recs.append(
            IndividualRecords(
                times,
                values,
                dose_t,
                amt,
                dose_durations=dur,
                dose_cmt=cmt,
                dose_ss=ss,
                dose_ii=ii,
                dose_reset=reset,
                censored=censored,
            )
        )
    return make_individuals(recs, covariates={"WT": np.arange(len(recs)) + 60.0})


@given(rich_tables())
@settings(max_examples=40, deadline=None)
def test_extras_round_trip_through_long_tables(X):
    back = from_long(to_long(X), covariates=["WT"])
    for a, b in zip(back["records"], X["records"], strict=True):
        assert a == b


# --------------------------------------------------------------- NONMEM files


def test_read_nonmem_reads_an_ordinary_file_with_event_and_extra_columns(tmp_path):
    text = """#ID TIME TAD DV AMT RATE ADDL II SS CMT EVID MDV BLQ LLOQ DOSE WT
1 0 0 . 100 50 2 12 1 1 1 1 . . 100 70
1 1 1 3.1 . . . . . 1 0 0 0 0.1 100 70
1 13 1 0.05 . . . . . 1 0 0 1 0.1 100 70
2 0 0 . 80 0 0 0 0 1 1 1 . . 80 61
2 2 2 2.5 . . . . . 1 0 0 0 0.1 80 61
"""
    path = tmp_path / "study.csv"
    path.write_text(text)
    with pytest.warns(UserWarning, match=r"columns \['TAD', 'DOSE', 'WT'\] of the long table"):
        X = read_nonmem(path)
    rec = X.loc[1, "records"]
    assert doses(rec) == {
        "t": [0.0, 12.0, 24.0],
        "amt": [100.0] * 3,
        "dur": [2.0] * 3,
        "cmt": [1] * 3,
        "ss": [1, 0, 0],
        "ii": [12.0, 0.0, 0.0],
        "reset": [False] * 3,
    }
    assert rec.censored.ravel().tolist() == [False, True]
    assert rec.values.ravel().tolist() == [3.1, 0.1]
    assert X.loc[2, "records"].dose_durations.tolist() == [0.0]
    with pytest.raises(ValueError, match=r"'RATE' has value -1.0 at ID 1 \(line 2\)"):
        path.write_text(text.replace(" 100 50 2", " 100 -1 2"))
        read_nonmem(path, covariates=["WT"])
