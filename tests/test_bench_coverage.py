"""bench.coverage stays runnable: its coverage arithmetic, and one quick replicate end to end."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# bench/ is a top-level package of the repository, not of the installed sknlme
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import coverage  # noqa: E402


def test_coverage_counts_misses_on_each_side():
    # 10 replicates of log_Cl: the truth below 1 interval, above 2, inside 7
    truth = coverage.TRUTH["log_Cl"]
    lower = np.r_[truth + 0.1, np.full(2, truth - 0.3), np.full(7, truth - 0.1)]
    upper = np.r_[truth + 0.3, np.full(2, truth - 0.1), np.full(7, truth + 0.1)]
    table = pd.DataFrame(
        {"rep": range(10), "parameter": "log_Cl", "truth": truth, "wald_lower": lower,
         "wald_upper": upper, "profile_lower": np.nan, "profile_upper": np.nan}
    )  # fmt: skip
    summary = coverage.coverage(table)
    assert list(summary["interval"]) == ["wald"]  # no profiles: no profile row
    row = summary.iloc[0]
    assert row["n"] == 10 and row["coverage"] == pytest.approx(0.7)
    assert row["miss_below"] == pytest.approx(0.1) and row["miss_above"] == pytest.approx(0.2)
    assert row["mc_se"] == pytest.approx(np.sqrt(0.7 * 0.3 / 10))
    assert not row["in_goal"] and row["median_width"] == pytest.approx(0.2)


@pytest.mark.slow  # one PK fit: about 40 s alone, minutes on the shared 2 cores (211 s measured)
def test_quick_run_one_replicate(tmp_path):
    lines = []
    table, summary = coverage.main(
        ["--quick", "--n-replicates", "1", "--profile", "--out", str(tmp_path)],
        print=lines.append,
    )
    assert list(table["parameter"]) == list(coverage.TRUTH.index)
    np.testing.assert_allclose(table["truth"], coverage.TRUTH.to_numpy())
    assert (table["wald_lower"] < table["estimate"]).all()
    assert (table["estimate"] < table["wald_upper"]).all()
    assert table["profile_lower"].isna().all()  # --profile with no names: Wald only
    assert set(summary["interval"]) == {"wald"} and (summary["n"] == 1).all()
    saved = pd.read_csv(tmp_path / "coverage.csv")
    assert len(saved) == len(coverage.TRUTH) and set(saved.columns) == set(table.columns)
    assert len(pd.read_csv(tmp_path / "coverage_summary.csv")) == len(coverage.TRUTH)
    assert "1 replicates of 12 subjects" in lines[0]


def test_first_replicate_outside_the_run_is_refused(capsys):
    with pytest.raises(SystemExit):
        coverage.main(["--first", "3", "--n-replicates", "3"])
    assert "--first" in capsys.readouterr().err


def test_a_continued_run_simulates_the_same_replicates():
    """``--first`` continues a run: replicate r's data and fit seed depend on (seed, r)."""
    X_a, phi_a, seed_a = coverage.simulate(5, 0, 6)
    X_b, phi_b, seed_b = coverage.simulate(5, 0, 6)
    assert seed_a == seed_b and np.array_equal(np.asarray(phi_a), np.asarray(phi_b))
    assert coverage.simulate(6, 0, 6)[2] != seed_a
