"""Figures of a population fit: individual fits, observed vs predicted."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._units import axis_label


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


def plot_individual_fits(
    model,
    X,
    phi,
    *,
    population_phi=None,
    max_individuals=12,
    n_points=200,
    output=0,
    units=None,
    log_y=False,
):
    """Observed data and model predictions (IPRED, and PRED), one panel per individual.

    Parameters
    ----------
    model : Model
        The individual model (must implement noise-free prediction).
    X : DataFrame or Study
        Individuals table (or a study prepared from it).
    phi : DataFrame or ndarray of shape (n_individuals, n_params)
        Individual parameter estimates, e.g. ``NLMEPopulationEstimator.predict(X)``:
        the IPRED curve.
    population_phi : ndarray of shape (n_params,) or (n_individuals, n_params), default=None
        Population mean parameters (per individual with covariates): the PRED
        curve, drawn dashed when given.
    max_individuals : int, default=12
        Number of individuals shown (the first ones of ``X``).
    n_points : int, default=200
        Points of the prediction curve.
    output : int, default=0
        Which output to show.
    units : dict, default=None
        ``{"time": "h", "conc": "mg/L"}``; without it the labels say no units
        were given.
    log_y : bool, default=False
        Log concentration axis (non-positive values are not drawn).

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
    >>> fig = plot_individual_fits(model, X, phi, population_phi=model.prior_mean,
    ...                            n_points=20, units={"time": "h"})
    >>> [ax.get_title() for ax in fig.axes], fig.axes[-1].get_xlabel()
    (['ID 1', 'ID 2', 'ID 3', 'ID 4'], 'time (h)')
    >>> len(fig.axes[0].lines)  # observed, IPRED, PRED
    3
    >>> plt.close(fig)
    """
    import matplotlib.pyplot as plt

    study = model.prepare(X, require_values=False)
    padded = study.padded
    n = min(padded.n_individuals, max_individuals)
    phi = _phi_array(phi, model, padded.n_individuals)[:n]
    grid = _fine_grid(padded, n_points)
    sub = study.take(np.arange(n))
    curves = model.predict(phi, sub, times=grid)[..., output]
    pred_curves = None
    if population_phi is not None:
        pop_phi = np.broadcast_to(
            np.asarray(population_phi, dtype=float), (padded.n_individuals, model.n_params)
        )[:n]
        pred_curves = model.predict(np.ascontiguousarray(pop_phi), sub, times=grid)[..., output]
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
        ax.plot(grid, curves[i], "-", color="C1", lw=1.2, label="IPRED (individual)")
        if pred_curves is not None:
            ax.plot(grid, pred_curves[i], "--", color="C2", lw=1.0, label="PRED (population)")
        if log_y:
            ax.set_yscale("log")
        ax.set_title(f"ID {study.index[i]}", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel(axis_label("time", "time", units))
    for ax in axes[:, 0]:
        ax.set_ylabel(axis_label(model.output_names[output], "conc", units))
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"{model.name}: individual fits")
    fig.tight_layout()
    return fig


def plot_observed_vs_predicted(model, X, phi, *, output=0, units=None):
    """Observed values against individual predictions at the observation times.

    Parameters
    ----------
    model : Model
    X : DataFrame or Study
        Individuals table (or a study prepared from it).
    phi : DataFrame or ndarray of shape (n_individuals, n_params)
        Individual parameter estimates.
    output : int, default=0
    units : dict, default=None
        ``{"conc": "mg/L"}``.

    Returns
    -------
    matplotlib.figure.Figure

    See Also
    --------
    plot_gof : the full goodness-of-fit panel (PRED and IPRED, residuals).

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
    'observed y (no units given)'
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
    ax.set_xlabel(
        axis_label(f"individual prediction of {model.output_names[output]}", "conc", units)
    )
    ax.set_ylabel(axis_label(f"observed {model.output_names[output]}", "conc", units))
    ax.set_title("Observed vs predicted")
    ax.legend()
    fig.tight_layout()
    return fig
