"""Figure of profile likelihoods."""

from __future__ import annotations

import numpy as np
from scipy.stats import chi2


def plot_profiles(source, params=None, confidence=0.95, ncols=3, sd_scale=True):
    """Profile likelihoods, one panel per population parameter.

    Each panel shows ``2 (l_max - l_profile)`` against the parameter, the
    ``chi2_1(confidence)`` threshold that bounds the confidence interval, and
    the estimate.

    Parameters
    ----------
    source : NLMEPopulationEstimator or pypesto.Result
        An estimator after :meth:`~sknlme.population.NLMEPopulationEstimator.profile`
        (its ``profile_result_`` is used), or a pyPESTO result with profiles.
    params : list of str, default=None
        Parameters to show (all profiled ones when None).
    confidence : float, default=0.95
        Level of the threshold line.
    ncols : int, default=3
        Panels per row.
    sd_scale : bool, default=True
        Draw a log-variance ``log_var(p)`` on the SD scale, ``omega(p) =
        exp(log_var / 2)`` (the scale of the summary); the profile is the
        same, its axis is transformed.

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
    >>> from sknlme.plotting import plot_profiles
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(30, random_state=0)
    >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
    ...                               n_starts=2, random_state=0).fit(X)
    >>> _ = pop.profile()
    >>> fig = plot_profiles(pop)
    >>> len(fig.axes), fig.axes[1].get_xlabel()
    (2, 'omega(theta0) (SD)')
    >>> plt.close(fig)
    """
    import matplotlib.pyplot as plt

    result = getattr(source, "profile_result_", source)
    if not hasattr(result, "profile_result") or not result.profile_result.list:
        raise ValueError("no profiles to plot: call estimator.profile() first")
    names = list(result.problem.x_names)
    free = list(result.problem.x_free_indices)
    profiles = result.profile_result.list[-1]
    done = [names[j] for j in free if profiles[j] is not None]
    params = done if params is None else [params] if isinstance(params, str) else list(params)
    missing = [p for p in params if p not in done]
    if missing:
        raise ValueError(f"no profile for {missing}; profiled: {done}")
    ncols = max(1, min(ncols, len(params)))
    nrows = -(-len(params) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.8 * nrows), squeeze=False)
    level = chi2.ppf(confidence, df=1)
    best = result.optimize_result[0]
    for ax, p in zip(axes.flat, params, strict=False):
        j = names.index(p)
        prof = profiles[j]
        xs, best_x, label = prof.x_path[j], best.x[j], p
        if sd_scale and p.startswith("log_var(") and p.endswith(")"):
            xs, best_x = np.exp(xs / 2.0), float(np.exp(best.x[j] / 2.0))
            label = f"omega({p[8:-1]}) (SD)"
        order = np.argsort(xs)
        dev = -2.0 * np.log(np.clip(prof.ratio_path, 1e-300, None))
        ax.plot(xs[order], dev[order], "-", color="C0")
        ax.axhline(level, color="C3", ls="--", lw=1, label=f"{confidence:.0%} threshold")
        ax.axvline(best_x, color="0.5", ls=":", lw=1)
        ax.set_xlabel(label)
        ax.set_ylabel("2 Δ log-likelihood")
        ax.set_ylim(bottom=min(0.0, float(np.nanmin(dev))), top=max(1.5 * level, 1.0))
    for ax in list(axes.flat)[len(params) :]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize="small")
    fig.tight_layout()
    return fig
