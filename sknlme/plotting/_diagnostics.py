"""Figures of posterior quality: recovery, SBC rank ECDF, training loss."""

from __future__ import annotations

import numpy as np


def _grid(d, size=2.8):
    import matplotlib.pyplot as plt

    ncol = min(d, 4)
    nrow = int(np.ceil(d / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(size * ncol, size * nrow), squeeze=False)
    for ax in axes.flat[d:]:
        ax.set_visible(False)
    return fig, axes.flat[:d]


def plot_recovery(draws, truth, param_names=None):
    """Posterior means (± 1 posterior SD) against the true parameters.

    Parameters
    ----------
    draws : array-like of shape (n, K, d)
        Posterior draws of simulated individuals.
    truth : array-like or DataFrame of shape (n, d)
        Their true parameters (DataFrame columns name the panels).
    param_names : sequence of str, default=None

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> import numpy as np
    >>> from sknlme.plotting import plot_recovery
    >>> rng = np.random.default_rng(0)
    >>> truth = rng.standard_normal((50, 2))
    >>> draws = truth[:, None] + 0.3 * rng.standard_normal((50, 100, 2))
    >>> fig = plot_recovery(draws, truth, ["a", "b"])
    >>> fig.axes[0].get_xlabel()
    'true a'
    >>> plt.close(fig)
    """
    from ..posterior import check_draws

    draws, truth, names = check_draws(draws, truth, param_names)
    means, sds = draws.mean(1), draws.std(1)
    fig, axes = _grid(draws.shape[2])
    for j, ax in enumerate(axes):
        ax.errorbar(truth[:, j], means[:, j], yerr=sds[:, j], fmt="o", ms=3, alpha=0.5, lw=0.8)
        lo = min(truth[:, j].min(), means[:, j].min())
        hi = max(truth[:, j].max(), means[:, j].max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        r2 = (
            1
            - ((means[:, j] - truth[:, j]) ** 2).sum()
            / ((truth[:, j] - truth[:, j].mean()) ** 2).sum()
        )
        ax.set_title(f"{names[j]} (R² = {r2:.2f})")
        ax.set_xlabel(f"true {names[j]}")
        ax.set_ylabel("posterior mean ± SD")
    fig.tight_layout()
    return fig


def plot_calibration_ecdf(draws, truth, param_names=None, level=0.95, random_state=0):
    """SBC rank ECDF minus the uniform CDF, with a simultaneous ``level`` band.

    A calibrated posterior stays inside the band; a curve above it means the
    truth tends to lie low in the posterior (over-estimation), below it the
    reverse; a U shape (curve down then up) means over-confidence.

    Parameters
    ----------
    draws : array-like of shape (n, K, d)
    truth : array-like or DataFrame of shape (n, d)
    param_names : sequence of str, default=None
    level : float, default=0.95
        Simultaneous coverage of the band (simulated under uniform ranks).
    random_state : int, default=0
        Seed of the band simulation.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> import numpy as np
    >>> from sknlme.plotting import plot_calibration_ecdf
    >>> rng = np.random.default_rng(0)
    >>> truth = rng.standard_normal((100, 1))
    >>> fig = plot_calibration_ecdf(rng.standard_normal((100, 50, 1)), truth)
    >>> fig.axes[0].get_ylabel()
    'ECDF − uniform CDF'
    >>> plt.close(fig)
    """
    from ..posterior import check_draws, sbc_ranks

    draws, truth, names = check_draws(draws, truth, param_names)
    n, K, d = draws.shape
    ranks = sbc_ranks(draws, truth)
    grid = np.arange(K + 2) / (K + 1)
    rng = np.random.default_rng(random_state)
    sim = rng.integers(0, K + 1, size=(1000, n))
    sim_dev = np.abs(
        (sim[:, None, :] < np.arange(K + 2)[None, :, None]).mean(-1) - grid[None, :]
    ).max(1)
    band = np.quantile(sim_dev, level)
    fig, axes = _grid(d)
    for j, ax in enumerate(axes):
        ecdf = (ranks[None, :, j] < np.arange(K + 2)[:, None]).mean(1)
        ax.fill_between(grid, -band, band, color="0.85", label=f"{level:.0%} band")
        ax.step(grid, ecdf - grid, where="post", label="rank ECDF")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_title(names[j])
        ax.set_xlabel("fractional rank")
        ax.set_ylabel("ECDF − uniform CDF")
    axes[0].legend(loc="best", fontsize="small")
    fig.tight_layout()
    return fig


def plot_loss(history):
    """Training and validation loss per epoch.

    Parameters
    ----------
    history : dict or fitted AmortizedPosterior
        ``{"loss": [...], "val_loss": [...]}`` or an estimator with ``history_``.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from sknlme.plotting import plot_loss
    >>> fig = plot_loss({"loss": [2.0, 1.5, 1.2], "val_loss": [2.1, 1.6, 1.4]})
    >>> fig.axes[0].get_xlabel()
    'epoch'
    >>> plt.close(fig)
    """
    import matplotlib.pyplot as plt

    history = getattr(history, "history_", history)
    if not isinstance(history, dict) or "loss" not in history:
        raise ValueError("history must be a dict with a 'loss' entry or a fitted estimator")
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for key, label in (("loss", "training"), ("val_loss", "validation")):
        if key in history:
            values = np.asarray(history[key], dtype=float)
            ax.plot(np.arange(1, len(values) + 1), values, marker="o", ms=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (negative log posterior density)")
    ax.legend()
    fig.tight_layout()
    return fig
