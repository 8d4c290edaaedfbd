"""bench.scale stays runnable: its whole quick path on tiny populations, and its helpers."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# bench/ is a top-level package of the repository, not of the installed sknlme
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import scale  # noqa: E402


def test_truth_is_the_papers_log_normal_population():
    # natural-scale means m and variances v of the original synthetic study give
    # log-scale mean log(m^2 / sqrt(m^2 + v)) and variance log(1 + v / m^2); the
    # brief's values are rounded to 3 decimals (5 for the small variance)
    m = np.array([0.8, 0.03, 502.0, 0.9])
    v = np.array([1.0, 1.0, 1000.0, 0.1])
    np.testing.assert_allclose(scale.TRUE_MEAN[:4], np.log(m**2 / np.sqrt(m**2 + v)), atol=6e-4)
    np.testing.assert_allclose(scale.TRUE_VAR[:4], np.log1p(v / m**2), atol=6e-4, rtol=1e-3)
    np.testing.assert_allclose(scale.TRUE_MEAN[4:], np.log([8.0, np.sqrt(1e-3)]), atol=6e-4)
    t = scale.truth()
    assert list(t.index) == scale.TARGETS and len(t) == 10
    assert t["sd(log_gamma)"] == pytest.approx(np.sqrt(7.014))


def test_align_swap_undoes_the_delta_gamma_exchange():
    t = scale.truth()
    swapped = t.copy()
    swapped["log_delta"], swapped["log_gamma"] = t["log_gamma"], t["log_delta"]
    swapped["sd(log_delta)"], swapped["sd(log_gamma)"] = t["sd(log_gamma)"], t["sd(log_delta)"]
    back, was = scale.align_swap(swapped)
    assert was and np.allclose(back, t)
    same, was = scale.align_swap(t + 0.1)
    assert not was and np.allclose(same, t + 0.1)


def test_trend_flags_monotone_and_ratio():
    t = scale.truth()
    rows = []
    for n, shift in [(10, 1.0), (100, 0.5), (1000, 0.8)]:
        row = {"n": n, "rep": 0}
        row |= {f"est_{p}": t[p] + shift for p in scale.TARGETS}
        row |= {f"err_{p}": shift for p in scale.TARGETS}
        rows.append(row)
    table = pd.DataFrame(rows)
    summary = table.groupby("n")[[f"err_{p}" for p in scale.TARGETS]].mean()
    summary["rmse"] = [1.0, 0.5, 0.8]
    tr = scale.trend(table, summary)
    assert tr.attrs["n_range"] == (10, 1000)
    assert not tr.loc["log_delta", "monotone"]
    assert tr.loc["log_delta", "ratio"] == pytest.approx(0.8)
    assert tr.loc["log_sigma", "bias_max_n"] == pytest.approx(0.8)


def test_quick_path_on_tiny_populations(tmp_path):
    lines = []
    table, fd, (diagnosis, gap) = scale.main(
        ["--quick", "--n", "20", "30", "--starts", "2", "--fd-cap", "10", "--out", str(tmp_path)]
    )
    # the FD baseline ran at the smallest N from the fit's first start point
    assert fd["n"] == 20 and fd["fd_evals"] > fd["analytic_evals"] > 0 and fd["ratio"] > 0
    assert np.isfinite(fd["analytic_f"])
    # the diagnosis ran on the largest population, swap-invariant in delta/gamma
    assert diagnosis.index[:2].tolist() == ["max(delta,gamma)", "min(delta,gamma)"]
    assert diagnosis["coverage95"].between(0, 1).all() and (diagnosis["post_sd"] > 0).all()
    assert np.isfinite(gap)
    assert list(table["n"]) == [20, 30]
    t = scale.truth()
    for _, row in table.iterrows():
        est = pd.Series({p: row[f"est_{p}"] for p in scale.TARGETS})
        err = pd.Series({p: row[f"err_{p}"] for p in scale.TARGETS})
        np.testing.assert_allclose(err, np.abs(est - t))
        assert row["rmse"] == pytest.approx(np.sqrt(np.mean((est - t) ** 2)))
        assert row["n_starts"] == 2 and row["start_s"] > 0 and row["fit_s"] > row["draw_s"] > 0
        # offset and sigma have no random effect: their sample moments are the truth
        assert row["sample_log_sigma"] == pytest.approx(t["log_sigma"])
    saved = pd.read_csv(tmp_path / "scale.csv")
    assert len(saved) == 2 and set(table.columns) == set(saved.columns)
    assert (tmp_path / "scale.png").stat().st_size > 10_000
    assert pd.read_csv(tmp_path / "scale_summary.csv", index_col=0).index.tolist() == [20, 30]
    summary, tr = scale.report(table, None, None, print=lines.append)
    assert any("recovery must not degrade with N" in str(line) for line in lines)
    assert tr.attrs["n_range"] == (20, 30) and "rmse" in tr.index
