"""Nonparametric bootstrap and case-deletion influence of a population fit.

Both re-optimise the fit's objective on resampled individuals together with
their cached draws (:func:`~sknlme.population._resample.subset_objective`),
starting at the estimate: no new posterior draws, no new starts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.utils import check_random_state

from ._compare import _result
from ._resample import refit_rows

__all__ = ["BootstrapResult", "bca_interval", "bootstrap", "case_deletion"]


def _check_confidence(confidence):
    confidence = float(confidence)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return confidence


def bca_interval(estimate, replicates, jackknife, confidence=0.95):
    """Bias-corrected and accelerated (BCa) interval (Efron 1987).

    ``z0 = Phi^-1(#{theta*_b < theta_hat} / B)`` (ties count half) and the
    acceleration ``a = sum d^3 / (6 (sum d^2)^(3/2))`` with
    ``d_i = mean(theta_(.)) - theta_(i)`` from the jackknife; the bounds are
    the replicates' quantiles at ``Phi(z0 + (z0 + z) / (1 - a (z0 + z)))``
    for ``z = Phi^-1(alpha / 2), Phi^-1(1 - alpha / 2)``.

    Parameters
    ----------
    estimate : array-like of shape (p,)
    replicates : array-like of shape (B, p)
        Bootstrap estimates.
    jackknife : array-like of shape (n, p)
        Leave-one-out estimates.
    confidence : float, default=0.95

    Returns
    -------
    lower, upper : ndarray of shape (p,)

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.population import bca_interval
    >>> x = np.random.default_rng(0).exponential(size=50)
    >>> boot = np.random.default_rng(1).choice(x, (2000, 50)).mean(axis=1)[:, None]
    >>> jack = np.array([np.delete(x, i).mean() for i in range(50)])[:, None]
    >>> lo, hi = bca_interval([x.mean()], boot, jack)
    >>> bool(lo[0] < x.mean() < hi[0])
    True
    """
    alpha = 1.0 - _check_confidence(confidence)
    est = np.asarray(estimate, dtype=float).reshape(-1)
    boot = np.asarray(replicates, dtype=float).reshape(-1, est.size)
    jack = np.asarray(jackknife, dtype=float).reshape(-1, est.size)
    frac = (np.sum(boot < est, axis=0) + 0.5 * np.sum(boot == est, axis=0)) / len(boot)
    eps = 0.5 / len(boot)
    z0 = stats.norm.ppf(np.clip(frac, eps, 1 - eps))
    d = jack.mean(axis=0) - jack
    den = 6.0 * np.sum(d**2, axis=0) ** 1.5
    a = np.divide(np.sum(d**3, axis=0), den, out=np.zeros(est.size), where=den > 0)
    out = []
    for z in stats.norm.ppf([alpha / 2, 1 - alpha / 2]):
        q = stats.norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z)))
        out.append(np.array([np.quantile(boot[:, j], q[j]) for j in range(est.size)]))
    return out[0], out[1]


class BootstrapResult:
    """Replicates of a nonparametric bootstrap of a population fit.

    Attributes
    ----------
    estimate : Series
        The estimate re-optimised on all individuals (the centre of the intervals).
    replicates : DataFrame of shape (n_boot, n_x)
        Estimates of the successful replicates.
    jackknife : DataFrame of shape (n, n_x)
        Leave-one-out estimates (BCa acceleration), indexed by ID.
    standard_errors : Series
        SD of the replicates.
    n_failed : int
        Replicates whose re-optimisation did not converge (dropped).
    seconds : float
        Wall time of the replicates.

    Examples
    --------
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme.population import NLMEPopulationEstimator, bootstrap
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(20, random_state=0)
    >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
    ...                               n_starts=1, likelihood="amortized", random_state=0).fit(X)
    >>> boot = bootstrap(pop, n_boot=50, random_state=0)
    >>> list(boot.intervals("bca").columns)
    ['estimate', 'lower', 'upper']
    """

    def __init__(self, estimate, replicates, jackknife, n_failed, seconds):
        self.estimate = estimate
        self.replicates = replicates
        self.jackknife = jackknife
        self.standard_errors = replicates.std(axis=0, ddof=1).rename("se")
        self.n_failed = int(n_failed)
        self.seconds = float(seconds)

    def intervals(self, method="percentile", confidence=0.95):
        """Bootstrap confidence intervals of the free parameters.

        Parameters
        ----------
        method : {"percentile", "bca"}, default="percentile"
        confidence : float, default=0.95

        Returns
        -------
        table : DataFrame
            ``estimate``, ``lower``, ``upper`` by parameter name.

        Examples
        --------
        >>> import numpy as np, pandas as pd
        >>> from sknlme.population import BootstrapResult
        >>> reps = pd.DataFrame({"a": np.linspace(-1, 1, 101)})
        >>> res = BootstrapResult(pd.Series({"a": 0.0}), reps, reps.iloc[:5], 0, 0.0)
        >>> res.intervals(confidence=0.5).round(2).to_numpy().tolist()
        [[0.0, -0.5, 0.5]]
        """
        alpha = 1.0 - _check_confidence(confidence)
        boot = self.replicates.to_numpy()
        if method == "percentile":
            lower, upper = np.quantile(boot, [alpha / 2, 1 - alpha / 2], axis=0)
        elif method == "bca":
            lower, upper = bca_interval(
                self.estimate.to_numpy(), boot, self.jackknife.to_numpy(), confidence
            )
        else:
            raise ValueError(f"method must be 'percentile' or 'bca', got {method!r}")
        return pd.DataFrame(
            {"estimate": self.estimate.to_numpy(), "lower": lower, "upper": upper},
            index=self.estimate.index,
        )


def _refit_all(res, n_jobs):
    """The estimate re-optimised on every individual, from ``res.x``."""
    n = res.objective.n
    x, _, _ = refit_rows(res.objective, res.x, [np.arange(n)], n_jobs=1)
    return x[0]


def bootstrap(fit, n_boot=1000, random_state=None, n_jobs=None, bca=True):
    """Nonparametric bootstrap over individuals, on the fit's cached draws.

    Each replicate resamples individuals with replacement, each with its own
    draws (and, for the importance likelihood, its proposal), and
    re-optimises from the estimate with L-BFGS-B (the importance likelihood
    by re-centred fixed-proposal surrogates, as the fit). The Monte-Carlo error of
    the draws is held fixed (common random numbers), so the replicates
    measure the sampling variability of the estimator only.

    Parameters
    ----------
    fit : NLMEPopulationEstimator or PopulationFitResult
    n_boot : int, default=1000
    random_state : int, RandomState or None, default=None
        Seeds the resampling.
    n_jobs : int, default=None
        Parallel replicates (joblib).
    bca : bool, default=True
        Also run the leave-one-out fits that BCa intervals need (``n`` more
        re-optimisations; see :func:`case_deletion` for their use).

    Returns
    -------
    result : BootstrapResult

    Examples
    --------
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme.population import NLMEPopulationEstimator, bootstrap
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(20, random_state=0)
    >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
    ...                               n_starts=1, likelihood="amortized", random_state=0).fit(X)
    >>> boot = bootstrap(pop, n_boot=50, random_state=0)
    >>> boot.replicates.shape
    (50, 2)
    """
    import time

    res = _result(fit)
    if int(n_boot) < 2:
        raise ValueError(f"n_boot must be >= 2, got {n_boot}")
    n = res.objective.n
    rng = check_random_state(random_state)
    sets = [rng.randint(0, n, size=n) for _ in range(int(n_boot))]
    est = _refit_all(res, n_jobs)
    t0 = time.perf_counter()
    x, _, ok = refit_rows(res.objective, est, sets, n_jobs=n_jobs)
    seconds = time.perf_counter() - t0
    names = res.x_names
    jack = np.full((n, len(names)), np.nan)
    if bca:
        jack, _, _ = refit_rows(res.objective, est, _leave_one_out(n), n_jobs=n_jobs)
    return BootstrapResult(
        pd.Series(est, index=names, name="estimate"),
        pd.DataFrame(x[ok], columns=names),
        pd.DataFrame(jack, columns=names, index=res.ess.index),
        np.sum(~ok),
        seconds,
    )


def _leave_one_out(n):
    return [np.delete(np.arange(n), i) for i in range(n)]


def case_deletion(fit, n_jobs=None):
    """Influence of each individual: the fit without it, on the same draws.

    Parameters
    ----------
    fit : NLMEPopulationEstimator or PopulationFitResult
    n_jobs : int, default=None

    Returns
    -------
    table : DataFrame
        By ID: ``delta_ofv``, the increase of the all-individual OFV
        (``-2 loglik`` on the fit's objective) at the leave-one-out estimate
        (the likelihood displacement of Cook 1986, >= 0 up to optimiser
        tolerance); ``cook``, ``d^T C^-1 d`` with ``d`` the change of the
        estimates and ``C`` their covariance (``covariance_x``); ``ofv_without``,
        the OFV of the other individuals at their own estimate; and one
        ``delta_<name>`` column per free parameter (estimate without minus with).

    Examples
    --------
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme.population import NLMEPopulationEstimator, case_deletion
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(10, random_state=0)
    >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
    ...                               n_starts=1, likelihood="amortized", random_state=0).fit(X)
    >>> table = case_deletion(pop)
    >>> table.shape, bool((table["delta_ofv"] > -1e-3).all())
    ((10, 5), True)
    """
    res = _result(fit)
    obj = res.objective
    est = _refit_all(res, n_jobs)
    x, fval, _ = refit_rows(obj, est, _leave_one_out(obj.n), n_jobs=n_jobs)
    f_all = obj(est)
    d = x - est
    cov = np.asarray(res.covariance_x, dtype=float)
    prec = np.linalg.pinv(cov) if np.all(np.isfinite(cov)) else np.full_like(cov, np.nan)
    table = pd.DataFrame(
        {
            "delta_ofv": [2.0 * (obj(xi) - f_all) for xi in x],
            "cook": np.einsum("ij,jk,ik->i", d, prec, d),
            "ofv_without": 2.0 * fval,
        },
        index=res.ess.index,
    )
    for j, name in enumerate(res.x_names):
        table[f"delta_{name}"] = d[:, j]
    return table
