"""read_nonmem on small NONMEM data files."""

import numpy as np
import pytest

from sknlme.data import IndividualRecords, read_nonmem

EXPECTED = {
    1: IndividualRecords([0.5, 2.0], [4.2, np.nan], [0.0], [100.0]),
    2: IndividualRecords([1.0], [3.0], [0.0, 12.0], [80.0, 80.0]),
}


def write(tmp_path, text):
    path = tmp_path / "data.csv"
    path.write_text(text)
    return path


def check(X):
    assert list(X.index) == [1, 2]
    assert X["WT"].tolist() == [70.5, 61.0]
    for ident, rec in EXPECTED.items():
        assert X.loc[ident, "records"] == rec, ident


def test_comma_separated_plain_header(tmp_path):
    text = (
        "ID,TIME,DV,AMT,EVID,MDV,WT\n"
        "1,0,.,100,1,1,70.5\n"
        "1, 0.5, 4.2, 0, 0, 0, 70.5\n"
        "1,2,.,0,0,1,70.5\n"
        "\n"
        "2,0,.,80,1,1,61\n"
        "2,1,3.0,0,0,0,61\n"
        "2,12,.,80,1,1,61\n"
    )
    check(read_nonmem(write(tmp_path, text), covariates=["WT"]))


def test_whitespace_hash_header_and_comments(tmp_path):
    text = (
        "#ID TIME DV AMT EVID MDV WT\n"
        "1   0   .   100 1 1 70.5\n"
        "# subject 1 observations\n"
        "1\t0.5 4.2 . 0 0 70.5\n"
        "1   2   .   .   0 1 70.5\n"
        "@ excluded: 1 3 9.9 . 0 0 70.5\n"
        "2 0 . 80 1 1 61\n"
        "2 1 3 . 0 0 61\n"
        "2 12 . 80 1 1 61\n"
    )
    check(read_nonmem(write(tmp_path, text), covariates=["WT"]))


def test_at_header_ignores_alphabetic_lines(tmp_path):
    text = (
        "@ID,TIME,DV,AMT,EVID,MDV,WT\n"
        "C comment line of the C convention\n"
        "1,0,.,100,1,1,70.5\n"
        "1,0.5,4.2,.,0,0,70.5\n"
        "1,2,.,.,0,1,70.5\n"
        "2,0,.,80,1,1,61\n"
        "#2,0.5,99,.,0,0,61\n"
        "2,1,3,.,0,0,61\n"
        "2,12,.,80,1,1,61\n"
    )
    check(read_nonmem(write(tmp_path, text), covariates=["WT"]))


def test_kwargs_passed_and_errors_name_line(tmp_path):
    text = "#id t y\n1 0 1.0\n1 1 BLQ\n"
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=r"'y' has non-numeric value 'BLQ' at ID 1 \(line 3\)"):
        read_nonmem(path, time_col="t", dv_col="y")
    ok = read_nonmem(write(tmp_path, "#id t y\n1 0 1.0\n1 1 2.0\n"), time_col="t", dv_col="y")
    assert ok.loc[1, "records"] == IndividualRecords([0.0, 1.0], [1.0, 2.0])


def test_empty_file(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        read_nonmem(write(tmp_path, "\n  \n"))
