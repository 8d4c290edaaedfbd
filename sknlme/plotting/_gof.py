"""Goodness-of-fit panel and ETA-vs-covariate plots, drawn from the fit's tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm

from ._units import axis_label, binned_median_smoother

__all__ = ["plot_eta_covariates", "plot_gof"]

_GOF_COLUMNS = ("TIME", "DV", "PRED", "IPRED", "IWRES", "CWRES")


def _scatter(ax, x, y, *, identity=False, zero=False, log=False):
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    if log:
        keep &= (x > 0) & (y > 0)
    x, y = x[keep], y[keep]
    ax.plot(x, y, "o", ms=3, alpha=0.5, color="C0")
    if len(x) and identity:
        lo, hi = min(x.min(), y.min()), max(x.max(), y.max())
        ax.plot([lo, hi], [lo, hi], "k-", lw=1)
    if zero:
        ax.axhline(0, color="k", lw=1)
    if log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    sx, sy = binned_median_smoother(np.log(x) if log else x, np.log(y) if log else y)
    if len(sx):
        ax.plot(np.exp(sx) if log else sx, np.exp(sy) if log else sy, "-", color="C3", lw=1.5)
    return len(x)


def plot_gof(observations, *, units=None):
    """Goodness-of-fit panel of a population fit, from its observation table.

    Eight panels: DV against PRED and against IPRED on linear and on log axes
    (identity line; non-positive values left out of the log panels), CWRES
    against time and against PRED (zero line), ``|IWRES|`` against IPRED, and
    a QQ plot of NPDE against N(0, 1) (identity line). The red line of the
    scatter panels is a binned-median smoother
    (:func:`binned_median_smoother`, on the log scale in the log panels).

    Parameters
    ----------
    observations : DataFrame
        :meth:`NLMEPopulationEstimator.observation_table` (columns TIME, DV,
        PRED, IPRED, IWRES, CWRES and, for the QQ panel, NPDE).
    units : dict, default=None
        ``{"time": "h", "conc": "mg/L"}``; without it the labels say no units
        were given.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme.population import NLMEPopulationEstimator
    >>> from sknlme.plotting import plot_gof
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(10, random_state=0)
    >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
    ...                               n_starts=2, random_state=0).fit(X)
    >>> fig = plot_gof(pop.observation_table(X, 100, random_state=0), units={"time": "h"})
    >>> len(fig.axes), fig.axes[4].get_xlabel()
    (8, 'time (h)')
    >>> plt.close(fig)
    """
    import matplotlib.pyplot as plt

    if not isinstance(observations, pd.DataFrame):
        raise TypeError("observations must be the DataFrame of observation_table(X)")
    missing = [c for c in _GOF_COLUMNS if c not in observations.columns]
    if missing:
        raise ValueError(f"observations lacks column(s) {missing}: pass observation_table(X)")
    o = observations
    conc = lambda q: axis_label(q, "conc", units)  # noqa: E731
    fig, axes = plt.subplots(2, 4, figsize=(14, 7))
    a = axes.flat
    for k, (pred, log) in enumerate([("PRED", False), ("IPRED", False), ("PRED", 1), ("IPRED", 1)]):
        _scatter(a[k], o[pred], o["DV"], identity=True, log=bool(log))
        a[k].set_xlabel(conc(pred))
        a[k].set_ylabel(conc("DV"))
        a[k].set_title(f"DV vs {pred}" + (" (log axes)" if log else ""))
    _scatter(a[4], o["TIME"], o["CWRES"], zero=True)
    a[4].set_xlabel(axis_label("time", "time", units))
    a[4].set_title("CWRES vs time")
    _scatter(a[5], o["PRED"], o["CWRES"], zero=True)
    a[5].set_xlabel(conc("PRED"))
    a[5].set_title("CWRES vs PRED")
    for ax in (a[4], a[5]):
        ax.set_ylabel("CWRES")
        for level in (-2, 2):
            ax.axhline(level, color="0.5", ls="--", lw=0.8)
    _scatter(a[6], o["IPRED"], np.abs(o["IWRES"]))
    a[6].set_xlabel(conc("IPRED"))
    a[6].set_ylabel("|IWRES|")
    a[6].set_title("|IWRES| vs IPRED")
    ax = a[7]
    if "NPDE" in o.columns and np.isfinite(o["NPDE"]).any():
        npde = np.sort(o["NPDE"].to_numpy(dtype=float)[np.isfinite(o["NPDE"])])
        theory = norm.ppf((np.arange(1, len(npde) + 1) - 0.5) / len(npde))
        ax.plot(theory, npde, "o", ms=3, alpha=0.5, color="C0")
        ax.plot(theory[[0, -1]], theory[[0, -1]], "k-", lw=1)
        ax.set_title("QQ plot of NPDE")
    else:
        ax.text(0.5, 0.5, "no NPDE column\n(n_simulations=0)", ha="center", transform=ax.transAxes)
        ax.set_title("QQ plot of NPDE (not computed)")
    ax.set_xlabel("N(0, 1) quantile")
    ax.set_ylabel("NPDE quantile")
    fig.tight_layout()
    return fig


def plot_eta_covariates(individuals, covariates=None, etas=None):
    """ETAs against covariates, one panel per (ETA, covariate) pair.

    Numeric covariates give a scatter with a binned-median smoother and a zero
    line; others give one box per category. A trend suggests a covariate
    effect the model lacks.

    Parameters
    ----------
    individuals : DataFrame
        :meth:`NLMEPopulationEstimator.individual_table` (its ``ETA(p)``
        columns and covariate columns).
    covariates : list of str, default=None
        Columns to plot against; when None, the columns before the first
        parameter that has an ``ETA`` column (the covariates of the table).
    etas : list of str, default=None
        ``ETA(...)`` columns to plot (all when None).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> import pandas as pd
    >>> from sknlme.plotting import plot_eta_covariates
    >>> table = pd.DataFrame({"WT": [60.0, 70, 80, 90], "SEX": ["F", "M", "F", "M"],
    ...                       "ETA(log_Cl)": [-0.2, 0.0, 0.1, 0.2]})
    >>> fig = plot_eta_covariates(table, ["WT", "SEX"])
    >>> [ax.get_xlabel() for ax in fig.axes]
    ['WT', 'SEX']
    >>> plt.close(fig)
    """
    import matplotlib.pyplot as plt

    if not isinstance(individuals, pd.DataFrame):
        raise TypeError("individuals must be the DataFrame of individual_table(X)")
    all_etas = [c for c in individuals.columns if str(c).startswith("ETA(")]
    etas = all_etas if etas is None else list(etas)
    if not etas or any(e not in individuals.columns for e in etas):
        raise ValueError(f"etas must be ETA(...) columns of individuals; it has {all_etas}")
    if covariates is None:
        covariates = _leading_covariates(individuals, all_etas)
    missing = [c for c in covariates if c not in individuals.columns]
    if missing:
        raise ValueError(f"covariate column(s) {missing} not in individuals")
    if not covariates:
        raise ValueError("no covariates to plot: pass covariates=[...] (the table has none)")
    fig, axes = plt.subplots(
        len(etas), len(covariates), figsize=(3.2 * len(covariates), 2.8 * len(etas)), squeeze=False
    )
    for r, eta in enumerate(etas):
        for c, cov in enumerate(covariates):
            ax, x = axes[r, c], individuals[cov]
            if pd.api.types.is_numeric_dtype(x):
                _scatter(ax, x, individuals[eta], zero=True)
            else:
                cats = sorted(x.dropna().unique(), key=str)
                ax.boxplot([individuals.loc[x == k, eta].dropna() for k in cats])
                ax.set_xticks(range(1, len(cats) + 1), [str(k) for k in cats])
                ax.axhline(0, color="k", lw=1)
            ax.set_xlabel(str(cov))
            ax.set_ylabel(eta)
    fig.tight_layout()
    return fig


def _leading_covariates(table, etas):
    """individual_table puts the covariates first, then the EBEs: the columns before the first
    parameter that has an ETA column."""
    names = [str(c) for c in table.columns]
    inner = {e[4:-1] for e in etas}
    stop = next((k for k, c in enumerate(names) if c in inner), len(names))
    return [c for c in table.columns[:stop] if c not in etas and c != "records"]
