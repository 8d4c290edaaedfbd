"""Posterior diagnostic metrics and figures (no training needed)."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from sknlme.plotting import plot_calibration_ecdf, plot_loss, plot_recovery  # noqa: E402
from sknlme.posterior import ecdf_error, posterior_metrics, sbc_ranks  # noqa: E402


def _conjugate(n=2000, K=100, shrink=1.0, seed=0):
    """Prior N(0,1), one observation N(phi, 1): posterior N(y/2, 1/2).

    ``shrink`` scales the posterior SD (1 = exact, < 1 over-confident)."""
    rng = np.random.default_rng(seed)
    truth = rng.standard_normal((n, 2))
    y = truth + rng.standard_normal((n, 2))
    draws = y[:, None] / 2 + shrink * np.sqrt(0.5) * rng.standard_normal((n, K, 2))
    return draws, truth


def test_metrics_of_exact_posterior():
    draws, truth = _conjugate()
    table = posterior_metrics(draws, pd.DataFrame(truth, columns=["a", "b"]), [1.0, 1.0])
    assert list(table.index) == ["a", "b"]
    # contraction 1 - 0.5/1 = 0.5; NRMSE sqrt(E var) = sqrt(0.5); 2000 sims: SE ~0.02
    np.testing.assert_allclose(table["contraction"], 0.5, atol=0.03)
    np.testing.assert_allclose(table["nrmse"], np.sqrt(0.5), atol=0.03)
    # coverage: binomial SD sqrt(.9*.1/2000) = 0.007 -> 4 SD
    np.testing.assert_allclose(table["coverage_0.9"], 0.9, atol=0.03)
    np.testing.assert_allclose(table["coverage_0.5"], 0.5, atol=0.045)
    # KS distance of 2000 uniform ranks: 99.9 % quantile 1.95/sqrt(2000) = 0.044
    assert (table["ecdf_error"] < 0.044).all()


def test_metrics_detect_overconfidence():
    draws, truth = _conjugate(shrink=0.5)
    table = posterior_metrics(draws, truth, [1.0, 1.0])
    # half-width intervals: 90 % nominal covers P(|Z| < 1.645/2) = 0.59
    assert (table["coverage_0.9"] < 0.7).all()
    assert (table["ecdf_error"] > 0.1).all()


def test_ecdf_error_on_rank_grid():
    ranks = np.arange(11)[:, None]  # perfectly uniform ranks 0..10 for K=10
    assert ecdf_error(ranks, 10)[0] == pytest.approx(0.0)
    assert ecdf_error(np.zeros((11, 1), int), 10)[0] == pytest.approx(10 / 11)
    draws, truth = _conjugate(n=5, K=10)
    assert sbc_ranks(draws, truth).shape == (5, 2)


def test_figures():
    draws, truth = _conjugate(n=200)
    fig = plot_recovery(draws, truth, ["a", "b"])
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert fig.axes[1].get_xlabel() == "true b" and "posterior mean" in fig.axes[1].get_ylabel()
    fig = plot_calibration_ecdf(draws, truth)
    assert isinstance(fig, Figure) and fig.axes[0].get_xlabel() == "fractional rank"
    fig = plot_loss({"loss": [3.0, 2.0], "val_loss": [3.1, 2.2]})
    assert [line.get_label() for line in fig.axes[0].lines] == ["training", "validation"]
    with pytest.raises(ValueError, match="history"):
        plot_loss({"accuracy": [1]})
    with pytest.raises(ValueError, match="shape"):
        plot_recovery(draws, truth[:, :1])
