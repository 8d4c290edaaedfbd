"""Figures of a population fit: individual fits, observed vs predicted, VPC."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state


def _phi_array(phi, model, n):
    if isinstance(phi, pd.DataFrame):
        phi = phi[list(model.param_names)].to_numpy(dtype=float)
    phi = np.asarray(phi, dtype=float)
    if phi.shape != (n, model.n_params):
        raise ValueError(f"phi must have shape ({n}, {model.n_params}), got {phi.shape}")
    return phi


def _fine_grid(padded, n_points):
    t_max = np.nanmax(np.where(padded.obs_mask, padded.times, np.nan))
    return np.linspace(0.0, t_max, n_points)


def plot_individual_fits(model, X, phi, *, max_individuals=12, n_points=200, output=0):
    """Observed data and model predictions, one panel per individual.

    Parameters
    ----------
    model : Model
        The individual model (must implement noise-free prediction).
    X : DataFrame or Study
        Individuals table (or a study prepared from it).
    phi : DataFrame or ndarray of shape (n_individuals, n_params)
        Individual parameter estimates, e.g. ``NLMEPopulationEstimator.predict(X)``.
    max_individuals : int, default=12
        Number of individuals shown (the first ones of ``X``).
    n_points : int, default=200
        Points of the prediction curve.
    output : int, default=0
        Which output to show.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.plotting import plot_individual_fits
    >>> model = LinearGaussian(sigma=0.1)
    >>> X, phi = model.simulate(4, random_state=0)
    >>> fig = plot_individual_fits(model, X, phi, n_points=20)
    >>> [ax.get_title() for ax in fig.axes]
    ['ID 1', 'ID 2', 'ID 3', 'ID 4']
    >>> plt.close(fig)
    """
    import matplotlib.pyplot as plt

    study = model.prepare(X, require_values=False)
    padded = study.padded
    n = min(padded.n_individuals, max_individuals)
    phi = _phi_array(phi, model, padded.n_individuals)[:n]
    grid = _fine_grid(padded, n_points)
    curves = model.predict(phi, study.take(np.arange(n)), times=grid)[..., output]
    ncol = int(np.ceil(np.sqrt(n)))
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(2.6 * ncol, 2.2 * nrow), squeeze=False, sharex=True, sharey=True
    )
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.set_visible(False)
            continue
        m = padded.obs_mask[i]
        ax.plot(
            padded.times[i, m], padded.values[i, m, output], "o", ms=3, color="C0", label="observed"
        )
        ax.plot(grid, curves[i], "-", color="C1", lw=1.2, label="individual fit")
        ax.set_title(f"ID {study.index[i]}", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("time")
    for ax in axes[:, 0]:
        ax.set_ylabel(model.output_names[output])
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"{model.name}: individual fits")
    fig.tight_layout()
    return fig


def plot_observed_vs_predicted(model, X, phi, *, output=0):
    """Observed values against individual predictions at the observation times.

    Parameters
    ----------
    model : Model
    X : DataFrame or Study
        Individuals table (or a study prepared from it).
    phi : DataFrame or ndarray of shape (n_individuals, n_params)
        Individual parameter estimates.
    output : int, default=0

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.plotting import plot_observed_vs_predicted
    >>> model = LinearGaussian(sigma=0.1)
    >>> X, phi = model.simulate(10, random_state=0)
    >>> fig = plot_observed_vs_predicted(model, X, phi)
    >>> fig.axes[0].get_ylabel()
    'observed y'
    >>> plt.close(fig)
    """
    import matplotlib.pyplot as plt

    study = model.prepare(X, require_values=False)
    padded = study.padded
    phi = _phi_array(phi, model, padded.n_individuals)
    pred = model.predict(phi, study)[..., output]
    obs = padded.values[..., output]
    mask = padded.obs_mask & np.isfinite(obs)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(pred[mask], obs[mask], "o", ms=3, alpha=0.6)
    lo = np.nanmin([pred[mask].min(), obs[mask].min()])
    hi = np.nanmax([pred[mask].max(), obs[mask].max()])
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="identity")
    ax.set_xlabel(f"individual prediction of {model.output_names[output]}")
    ax.set_ylabel(f"observed {model.output_names[output]}")
    ax.set_title("Observed vs predicted")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_vpc(
    model,
    X,
    mean,
    cov,
    *,
    n_replicates=200,
    n_bins=8,
    quantiles=(0.05, 0.5, 0.95),
    output=0,
    random_state=None,
):
    """Visual predictive check: observed quantiles against simulated prediction intervals.

    Each replicate draws new individual parameters ``phi_i ~ N(mean_i, cov)`` and
    simulates every individual on its own design (times, doses), with noise.

    Parameters
    ----------
    model : Model
    X : DataFrame or Study
        Individuals table (designs and observations), or a study prepared from it.
    mean : ndarray of shape (n_params,) or (n_individuals, n_params)
        Population mean (per individual when covariates shift it).
    cov : ndarray of shape (n_params, n_params)
        Random-effects covariance.
    n_replicates : int, default=200
    n_bins : int, default=8
        Time bins (by quantiles of the observation times).
    quantiles : tuple of float, default=(0.05, 0.5, 0.95)
    output : int, default=0
    random_state : int, RandomState or None

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.plotting import plot_vpc
    >>> model = LinearGaussian(sigma=0.1)
    >>> X, _ = model.simulate(20, random_state=0)
    >>> fig = plot_vpc(model, X, model.prior_mean, model.prior_cov, n_replicates=20,
    ...                n_bins=3, random_state=0)
    >>> fig.axes[0].get_title()
    'Visual predictive check (20 replicates)'
    >>> plt.close(fig)
    """
    import matplotlib.pyplot as plt

    rng = check_random_state(random_state)
    study = model.prepare(X, require_values=False)
    padded = study.padded
    n = padded.n_individuals
    mean = np.broadcast_to(np.asarray(mean, dtype=float), (n, model.n_params))
    chol = np.linalg.cholesky(np.asarray(cov, dtype=float))
    phi = mean[None] + rng.standard_normal((n_replicates, n, model.n_params)) @ chol.T
    # replicate r holds rows r*n .. r*n + n - 1 (np.tile order), as the reshape below reads them
    rows = np.tile(np.arange(n), n_replicates)
    rep_design = padded.take(rows)
    covs = None
    if model.covariate_names:
        covs = study.covariates[list(model.covariate_names)].iloc[rows]
    sims = model.simulate_padded(phi.reshape(-1, model.n_params), rep_design, covs, rng)
    sims = sims[..., output].reshape(n_replicates, n, -1)
    obs = padded.values[..., output]
    mask = padded.obs_mask & np.isfinite(obs)
    t = padded.times[mask]
    edges = np.unique(np.quantile(t, np.linspace(0, 1, n_bins + 1)))
    bins = np.clip(np.searchsorted(edges, padded.times, side="right") - 1, 0, len(edges) - 2)
    centers, obs_q, sim_q = [], [], []
    for b in range(len(edges) - 1):
        sel = mask & (bins == b)
        if not sel.any():
            continue
        centers.append(np.median(padded.times[sel]))
        obs_q.append(np.quantile(obs[sel], quantiles))
        per_rep = np.quantile(sims[:, sel], quantiles, axis=1)  # (q, rep)
        sim_q.append(np.quantile(per_rep, [0.05, 0.5, 0.95], axis=1))  # (3, q)
    centers, obs_q, sim_q = np.array(centers), np.array(obs_q), np.array(sim_q)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(t, obs[mask], "o", ms=2, color="0.6", alpha=0.6, label="observed")
    for j, q in enumerate(quantiles):
        color = "C1" if q == 0.5 else "C0"
        ax.fill_between(
            centers,
            sim_q[:, 0, j],
            sim_q[:, 2, j],
            color=color,
            alpha=0.25,
            label=f"simulated {q:.0%} quantile (90% PI)",
        )
        ax.plot(centers, obs_q[:, j], "-", color=color, lw=1.5, label=f"observed {q:.0%} quantile")
    ax.set_xlabel("time")
    ax.set_ylabel(model.output_names[output])
    ax.set_title(f"Visual predictive check ({n_replicates} replicates)")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig
