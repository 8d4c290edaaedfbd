"""Visual predictive check: nominal-time bins, prediction correction, strata, censoring.

Binning (as the vpc R package's and PsN's k-means/Jenks options): observation
times are clustered by optimal one-dimensional k-means (Jenks natural breaks,
exact by dynamic programming) on ``log(1 + t / s)`` with ``s`` a tenth of the
median positive time, so that 0.25 h against 0.5 h separates as well as 12 h
against 24 h; by default there are as many bins as the median individual has
distinct observation times (11 for theophylline). Each bin is drawn at the
median time of its observations.

Prediction correction (Bergstrand et al. 2011, AAPS J 13:143): observed and
simulated values are multiplied by ``PRED_bin / PRED`` (``PRED_bin``: median
PRED of the bin and stratum), so that differences in dose and covariates do
not widen the bands.

Censoring: where observations are censored (``records.censored``), the limit
is the largest censored limit; observed values below it and simulated values
below it are censored the same way. Censored values rank below every
quantified value, and a quantile that depends on one is not identifiable and
not drawn (:func:`censored_quantiles`, as the vpc package and PsN do); the
status is decided before prediction correction, which rescales quantified
values only, so the pcVPC handles censoring too. A second row of panels
shows the observed fraction BLQ per bin against its simulated 90 % interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state

from ._units import axis_label
from ._vpc_stats import blq_fraction_band, censored_quantiles, simulated_bands

__all__ = ["nominal_time_bins", "plot_vpc"]


def nominal_time_bins(times, n_bins):
    """Bin labels of observation times at the design's nominal times (1-D k-means).

    Optimal (Jenks / 1-D k-means, by dynamic programming over the distinct
    times) clustering of ``log(1 + t / s)``, ``s`` a tenth of the median
    positive time.

    Parameters
    ----------
    times : array-like of shape (n,)
        Observation times (finite).
    n_bins : int
        Number of bins (at most the number of distinct times).

    Returns
    -------
    ndarray of int, shape (n,)
        Bin of every time, ``0 .. n_bins - 1`` in increasing time.

    Examples
    --------
    >>> from sknlme.plotting import nominal_time_bins
    >>> nominal_time_bins([0.25, 0.3, 0.5, 0.55, 12.0, 12.2, 24.1, 23.8], 4).tolist()
    [0, 0, 1, 1, 2, 2, 3, 3]
    """
    t = np.asarray(times, dtype=float)
    if t.ndim != 1 or not np.isfinite(t).all():
        raise ValueError("times must be a 1-D array of finite observation times")
    values, inverse, counts = np.unique(t, return_inverse=True, return_counts=True)
    k = int(n_bins)
    if not 1 <= k:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    k = min(k, len(values))
    positive = np.repeat(values, counts)[np.repeat(values, counts) > 0]
    scale = 0.1 * float(np.median(positive)) if len(positive) else 1.0
    x = np.log1p(np.maximum(values, 0.0) / scale)
    m = len(x)
    W = np.concatenate([[0.0], np.cumsum(counts)])
    S1 = np.concatenate([[0.0], np.cumsum(counts * x)])
    S2 = np.concatenate([[0.0], np.cumsum(counts * x * x)])

    def cost(i, j):  # within sum of squares of values[i:j] (j exclusive), i an array
        w = W[j] - W[i]
        return S2[j] - S2[i] - (S1[j] - S1[i]) ** 2 / w

    D = np.full((k + 1, m + 1), np.inf)
    D[0, 0] = 0.0
    arg = np.zeros((k + 1, m + 1), dtype=int)
    for c in range(1, k + 1):
        for j in range(c, m + 1):
            i = np.arange(c - 1, j)
            total = D[c - 1, i] + cost(i, j)
            best = int(np.argmin(total))
            D[c, j], arg[c, j] = total[best], i[best]
    labels = np.empty(m, dtype=int)
    j = m
    for c in range(k, 0, -1):
        i = arg[c, j]
        labels[i:j] = c - 1
        j = i
    return labels[inverse]


def _strata(X, stratify, n):
    if stratify is None:
        return np.zeros(n, dtype=int), [None]
    if not isinstance(X, pd.DataFrame) or stratify not in X.columns:
        raise ValueError(f"stratify={stratify!r} must be a column of X")
    col = X[stratify]
    if pd.api.types.is_numeric_dtype(col) and col.nunique() > 5:
        med = float(np.median(col))
        return (col.to_numpy() >= med).astype(int), [
            f"{stratify} < {med:.4g}",
            f"{stratify} ≥ {med:.4g}",
        ]
    cats = sorted(col.unique(), key=str)
    return np.array([cats.index(v) for v in col]), [f"{stratify} = {c}" for c in cats]


def plot_vpc(
    model,
    X,
    mean,
    cov,
    *,
    n_replicates=200,
    n_bins=None,
    binning="nominal",
    quantiles=(0.05, 0.5, 0.95),
    pred_corrected=False,
    stratify=None,
    lower_bound="auto",
    log_y=False,
    units=None,
    output=0,
    random_state=None,
):
    """Visual predictive check: observed quantiles against simulated prediction intervals.

    Each replicate draws new individual parameters ``phi_i ~ N(mean_i, cov)``
    and simulates every individual on its own design (times, doses), with
    noise. Bands are the 90 % intervals, over replicates, of each simulated
    quantile; lines are the observed quantiles. See the module notes for the
    binning, the prediction correction and censoring.

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
    n_bins : int, default=None
        Number of time bins; None: the median number of distinct observation
        times per individual (``binning="nominal"``) or 8 (``"quantile"``).
    binning : {"nominal", "quantile"}, default="nominal"
        Nominal-time clustering (:func:`nominal_time_bins`) or bins of equal
        counts (quantiles of the times).
    quantiles : tuple of float, default=(0.05, 0.5, 0.95)
    pred_corrected : bool, default=False
        Prediction-corrected VPC (pcVPC).
    stratify : str, default=None
        Column of ``X``: one panel per category, or per half (at the median)
        for a numeric column with more than 5 values.
    lower_bound : float, None or "auto", default="auto"
        Bands and quantiles are clipped below at this value; "auto": 0 when
        every observation is non-negative, else no clipping.
    log_y : bool, default=False
    units : dict, default=None
        ``{"time": "h", "conc": "mg/L"}``.
    output : int, default=0
    random_state : int, RandomState or None

    Returns
    -------
    matplotlib.figure.Figure
        One axes per stratum; with censored observations a second row, one
        axes per stratum, of the fraction BLQ per bin (observed line,
        simulated median and 90 % interval).

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

    if binning not in ("nominal", "quantile"):
        raise ValueError(f"binning must be 'nominal' or 'quantile', got {binning!r}")
    rng = check_random_state(random_state)
    study = model.prepare(X, require_values=False)
    padded = study.padded
    n = padded.n_individuals
    mean = np.broadcast_to(np.asarray(mean, dtype=float), (n, model.n_params))
    chol = np.linalg.cholesky(np.asarray(cov, dtype=float))
    phi = mean[None] + rng.standard_normal((n_replicates, n, model.n_params)) @ chol.T
    # replicate r holds rows r*n .. r*n + n - 1 (np.tile order), as the reshape below reads them
    rows = np.tile(np.arange(n), n_replicates)
    covs = None
    if model.covariate_names:
        covs = study.covariates[list(model.covariate_names)].iloc[rows]
    sims = model.simulate_padded(phi.reshape(-1, model.n_params), padded.take(rows), covs, rng)
    sims = sims[..., output].reshape(n_replicates, n, -1)
    obs = padded.values[..., output].astype(float)
    mask = padded.obs_mask & np.isfinite(obs)
    cens = padded.censored[..., output] & mask
    lloq = float(obs[cens].max()) if cens.any() else None
    # censoring status on the uncorrected scale (module notes); NaN sims are no BLQ
    obs_blq = cens | (mask & (obs < lloq)) if lloq is not None else np.zeros_like(mask)
    with np.errstate(invalid="ignore"):
        sim_blq = sims < lloq if lloq is not None else np.zeros(sims.shape, bool)
    strata, names = _strata(X, stratify, n)
    strata = np.broadcast_to(strata[:, None], mask.shape)

    t = padded.times[mask]
    if binning == "nominal":
        if n_bins is None:
            per_id = [len(np.unique(padded.times[i, mask[i]])) for i in range(n)]
            n_bins = max(1, int(np.median(per_id)))
        labels = nominal_time_bins(t, n_bins)
    else:
        edges = np.unique(np.quantile(t, np.linspace(0, 1, (n_bins or 8) + 1)))
        labels = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, len(edges) - 2)
    bins = np.full(mask.shape, -1)
    bins[mask] = labels

    if pred_corrected:
        pred = model.predict(mean, study)[..., output]
        factor = np.full(mask.shape, np.nan)
        for s in range(len(names)):
            for b in np.unique(labels):
                sel = mask & (bins == b) & (strata == s)
                if sel.any():
                    pb = np.median(pred[sel])
                    p = pred[sel]
                    factor[sel] = np.where(
                        p > 0, pb / np.where(p > 0, p, 1), 1.0 if pb == 0 else np.nan
                    )
        obs = obs * factor
        sims = sims * factor[None]
        mask = mask & np.isfinite(factor)
    if lower_bound == "auto":
        lower_bound = 0.0 if (obs[mask & ~obs_blq] >= 0).all() else None

    n_rows = 1 if lloq is None else 2
    fig, grid = plt.subplots(
        n_rows,
        len(names),
        figsize=(6 * len(names), 4 + 2 * (n_rows - 1)),
        squeeze=False,
        sharey="row",
        height_ratios=[2, 1][:n_rows],
    )
    axes = grid[:1]
    kind = "Prediction-corrected VPC" if pred_corrected else "Visual predictive check"
    for s, (ax, name) in enumerate(zip(axes.flat, names, strict=True)):
        centers, obs_q, sim_q, obs_f, sim_f = [], [], [], [], []
        for b in np.unique(labels):
            sel = mask & (bins == b) & (strata == s)
            if not sel.any():
                continue
            centers.append(np.median(padded.times[sel]))
            obs_q.append(censored_quantiles(obs[sel], obs_blq[sel], quantiles))
            per_rep = censored_quantiles(sims[:, sel], sim_blq[:, sel], quantiles)  # (rep, q)
            sim_q.append(simulated_bands(per_rep))  # (3, q)
            obs_f.append(obs_blq[sel].mean())
            sim_f.append(blq_fraction_band(sim_blq[:, sel]))
        centers, obs_q, sim_q = np.array(centers), np.array(obs_q), np.array(sim_q)
        if lower_bound is not None:
            obs_q, sim_q = np.maximum(obs_q, lower_bound), np.maximum(sim_q, lower_bound)
        if lloq is not None:
            if not pred_corrected:  # the pcVPC corrects limits per value: no single line
                ax.axhline(lloq, color="0.3", ls=":", lw=1, label="LLOQ")
            _blq_panel(grid[1, s], centers, np.array(obs_f), np.array(sim_f), units)
        sel = mask & (strata == s)
        ax.plot(
            padded.times[sel & ~cens],
            obs[sel & ~cens],
            "o",
            ms=2,
            color="0.6",
            alpha=0.6,
            label="observed",
        )
        if (sel & cens).any() and not pred_corrected:
            ax.plot(
                padded.times[sel & cens],
                obs[sel & cens],
                "x",
                ms=3,
                color="0.4",
                label="censored (at LLOQ)",
            )
        for j, q in enumerate(quantiles):
            color = "C1" if q == 0.5 else "C0"
            outer = "median" if q == 0.5 else "outer quantiles"
            first = j == 0 or q == 0.5
            ax.fill_between(
                centers,
                sim_q[:, 0, j],
                sim_q[:, 2, j],
                color=color,
                alpha=0.25,
                label=f"simulated {outer} (90% PI)" if first else None,
            )
            ax.plot(
                centers,
                obs_q[:, j],
                "-",
                color=color,
                lw=1.5,
                label=f"observed {outer}" if first else None,
            )
        title = f"{kind} ({n_replicates} replicates)"
        ax.set_title(title if name is None else f"{title}: {name}", fontsize=10)
        ax.set_xlabel(axis_label("time", "time", units))
        if log_y:
            ax.set_yscale("log")
    ylab = f"{'prediction-corrected ' if pred_corrected else ''}{model.output_names[output]}"
    axes.flat[0].set_ylabel(axis_label(ylab, "conc", units))
    axes.flat[0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def _blq_panel(ax, centers, observed, simulated, units):
    """Fraction BLQ per bin: observed line, simulated median and 90 % interval."""
    ax.fill_between(
        centers, simulated[:, 0], simulated[:, 2], color="C2", alpha=0.25, label="simulated 90% PI"
    )
    ax.plot(centers, simulated[:, 1], "--", color="C2", lw=1, label="simulated median")
    ax.plot(centers, observed, "o-", color="k", ms=3, lw=1.2, label="observed fraction BLQ")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("fraction BLQ")
    ax.set_xlabel(axis_label("time", "time", units))
    ax.legend(fontsize=7, loc="best")
