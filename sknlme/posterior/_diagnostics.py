"""Calibration and recovery metrics of a posterior on simulations with known truth."""

from __future__ import annotations

import numpy as np
import pandas as pd


def check_draws(draws, truth, param_names=None):
    """Validate posterior draws against true parameters.

    Parameters
    ----------
    draws : array-like of shape (n, K, d)
        Posterior draws of ``n`` individuals.
    truth : array-like or DataFrame of shape (n, d)
        Their true parameters (a DataFrame's columns name the parameters).
    param_names : sequence of str, default=None
        Parameter names; the columns of ``truth`` or ``phi0, phi1, ...`` when None.

    Returns
    -------
    draws : ndarray of shape (n, K, d), float64
    truth : ndarray of shape (n, d), float64
    param_names : list of str

    Raises
    ------
    ValueError
        When the shapes do not match.

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.posterior import check_draws
    >>> draws, truth, names = check_draws(np.zeros((4, 10, 2)), np.ones((4, 2)))
    >>> draws.shape, truth.shape, names
    ((4, 10, 2), (4, 2), ['phi0', 'phi1'])
    """
    draws = np.asarray(draws, dtype=float)
    if isinstance(truth, pd.DataFrame):
        if param_names is None:
            param_names = list(truth.columns)
        truth = truth.to_numpy(dtype=float)
    truth = np.asarray(truth, dtype=float)
    if draws.ndim != 3 or truth.shape != (draws.shape[0], draws.shape[2]):
        raise ValueError(
            f"draws must have shape (n, K, d) and truth (n, d); got {draws.shape}, {truth.shape}"
        )
    if param_names is None:
        param_names = [f"phi{j}" for j in range(draws.shape[2])]
    return draws, truth, list(param_names)


def sbc_ranks(draws, truth):
    """Rank statistics: number of draws below the truth, shape (n, d), in 0..K.

    Parameters
    ----------
    draws : array-like of shape (n, K, d)
    truth : array-like or DataFrame of shape (n, d)

    Returns
    -------
    ndarray of shape (n, d), int

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.posterior import sbc_ranks
    >>> sbc_ranks(np.arange(5.0).reshape(1, 5, 1), [[2.5]])
    array([[3]])
    """
    draws, truth, _ = check_draws(draws, truth)
    return (draws < truth[:, None, :]).sum(axis=1)


def ecdf_error(ranks, n_draws):
    """Largest distance between the rank ECDF and the uniform CDF.

    Under calibration ``P(rank < j) = j / (K + 1)`` exactly for ``j = 0..K+1``;
    the error is ``max_j |mean(rank < j) - j / (K + 1)|`` (a Kolmogorov-Smirnov
    distance on the rank grid), per parameter.

    Parameters
    ----------
    ranks : array-like of shape (n, d)
        Ranks from :func:`sbc_ranks`.
    n_draws : int
        Number of draws ``K`` per individual.

    Returns
    -------
    ndarray of shape (d,)

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.posterior import ecdf_error
    >>> ranks = np.arange(10).reshape(10, 1)  # uniform on 0..9 (K = 9)
    >>> float(ecdf_error(ranks, 9)[0])
    0.0
    """
    ranks = np.asarray(ranks)
    grid = np.arange(n_draws + 2)
    ecdf = (ranks[None, ...] < grid.reshape(-1, *([1] * ranks.ndim))).mean(axis=1)
    return np.abs(ecdf - (grid / (n_draws + 1)).reshape(-1, *([1] * (ranks.ndim - 1)))).max(0)


def posterior_metrics(draws, truth, prior_var, param_names=None, levels=(0.5, 0.9, 0.95)):
    """Per-parameter recovery and calibration metrics.

    Parameters
    ----------
    draws : array-like of shape (n, K, d)
        Posterior draws of ``n`` simulated individuals.
    truth : array-like or DataFrame of shape (n, d)
        The parameters they were simulated with.
    prior_var : array-like of shape (d,)
        Prior variances (normalise NRMSE and contraction).
    param_names : sequence of str, default=None
    levels : tuple of float, default=(0.5, 0.9, 0.95)
        Central interval levels whose coverage is reported.

    Returns
    -------
    DataFrame
        Index: parameters. Columns: ``nrmse`` (RMSE of posterior means / prior
        SD; 0 perfect, about 1 uninformative), ``contraction`` (1 - mean
        posterior variance / prior variance), ``ecdf_error`` (see
        :func:`ecdf_error`), ``calibration_error`` (BayesFlow's median absolute
        coverage error over interval levels) and ``coverage_<level>``.

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.posterior import posterior_metrics
    >>> rng = np.random.default_rng(0)
    >>> truth = rng.standard_normal((500, 1))          # prior N(0, 1)
    >>> y = truth + rng.standard_normal((500, 1))      # one N(truth, 1) observation
    >>> draws = y[:, None] / 2 + np.sqrt(0.5) * rng.standard_normal((500, 200, 1))
    >>> m = posterior_metrics(draws, truth, [1.0])
    >>> round(float(m.loc["phi0", "contraction"]), 1)
    0.5
    >>> bool(m.loc["phi0", "ecdf_error"] < 0.1)
    True
    """
    from bayesflow.diagnostics.metrics import calibration_error

    draws, truth, names = check_draws(draws, truth, param_names)
    prior_var = np.asarray(prior_var, dtype=float).reshape(-1)
    means = draws.mean(axis=1)
    out = {
        "nrmse": np.sqrt(((means - truth) ** 2).mean(0) / prior_var),
        "contraction": 1.0 - draws.var(axis=1, ddof=1).mean(0) / prior_var,
        "ecdf_error": ecdf_error(sbc_ranks(draws, truth), draws.shape[1]),
        "calibration_error": np.asarray(calibration_error(draws, truth)["values"]),
    }
    for level in levels:
        lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=1)
        out[f"coverage_{level:g}"] = ((lo <= truth) & (truth <= hi)).mean(0)
    return pd.DataFrame(out, index=pd.Index(names, name="parameter"))


class Diagnosis:
    """:meth:`diagnose` of a posterior with ``sample`` and ``model`` (a mixin)."""

    def diagnose(self, X_val, phi_val, n_samples=None, random_state=0):
        """Calibration and recovery metrics on held-out simulations.

        Parameters
        ----------
        X_val : DataFrame
            Simulated individuals (not used in training).
        phi_val : DataFrame or array-like of shape (n, n_params)
            Their true parameters.
        n_samples : int, default=None
            Draws per individual; ``self.n_samples`` when None.
        random_state : int, RandomState or None, default=0

        Returns
        -------
        DataFrame
            One row per parameter; see
            :func:`sknlme.posterior.posterior_metrics`.

        Examples
        --------
        >>> from sknlme.datasets import pretrained
        >>> post = pretrained("one-compartment-oral")
        >>> X_val, phi_val = post.model.simulate(50, random_state=1)
        >>> table = post.diagnose(X_val, phi_val, n_samples=20)
        >>> list(table.index) == list(post.model.param_names)
        True
        """
        draws = self.sample(X_val, n_samples, random_state)
        return posterior_metrics(
            draws, phi_val, np.diag(self.model.prior_cov), self.model.param_names
        )
