"""Model comparison: information criteria side by side and likelihood-ratio tests.

The LRT of nested fits uses ``T = 2 (loglik_full - loglik_reduced)``. Extra
parameters that are variances of random effects present in the full model
and absent in the reduced one lie on the boundary of the parameter space
under the null (variance 0), so ``T`` is not ``chi2(df)``: for ``k`` such
(independent) variance components and ``m`` other extra parameters it is the
chi-bar-square mixture ``sum_j C(k, j) 2^-k chi2(m + j)`` (Self & Liang 1987;
``k = 1, m = 0``: the 50:50 mixture of ``chi2(0)`` and ``chi2(1)``).

A normal fit is the limit of a Student-t fit as ``nu -> infinity``, i.e. at the
boundary ``1 / nu = 0``: testing normal against t random effects with
estimated ``log_df`` counts ``log_df`` as one boundary parameter too (the
same 50:50 mixture; the t's ``log_df`` is capped at ``log 1000``, where it is
normal to within the Monte-Carlo error). Against a t with a fixed ``df`` the
extra ``log_df`` is an interior parameter.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import comb

__all__ = ["compare", "likelihood_ratio_test", "mixture_chi2_sf"]


def _result(fit, what="fit"):
    """The ``PopulationFitResult`` of an estimator or the result itself."""
    res = getattr(fit, "result_", fit)
    if not hasattr(res, "loglik") or not hasattr(res, "x_names"):
        raise TypeError(
            f"{what} must be a fitted NLMEPopulationEstimator or a PopulationFitResult, "
            f"got {type(fit).__name__}"
        )
    return res


def _exact(res, what):
    if res.likelihood == "amortized":
        raise ValueError(
            f"{what} was fitted with likelihood='amortized': its log-likelihood is known "
            "up to a constant that depends on the data and the network, so it compares "
            "with no other fit; refit with likelihood='importance' (the default 'auto' "
            "uses it where the model has an observation likelihood)"
        )


def mixture_chi2_sf(statistic, df, n_boundary=0):
    """Upper tail of ``sum_j C(k, j) 2^-k chi2(df - k + j)``, ``k = n_boundary``.

    The null distribution of the LR statistic when ``n_boundary`` of the
    ``df`` extra parameters are variances on the boundary (``chi2(0)`` is a
    point mass at 0); ``n_boundary=0`` is the plain ``chi2(df)``.

    Parameters
    ----------
    statistic : float or array-like
        LR statistic(s) ``T >= 0``.
    df : int
        Number of extra parameters of the full model.
    n_boundary : int, default=0
        How many of them are boundary variance components (``<= df``).

    Returns
    -------
    p : float or ndarray

    Examples
    --------
    >>> from sknlme.population import mixture_chi2_sf
    >>> round(float(mixture_chi2_sf(2.706, 1, n_boundary=1)), 3)  # half of chi2(1)'s 0.1
    0.05
    >>> round(float(mixture_chi2_sf(3.841, 1)), 3)
    0.05
    """
    df, k = int(df), int(n_boundary)
    if df < 1 or not 0 <= k <= df:
        raise ValueError(f"need df >= 1 and 0 <= n_boundary <= df, got df={df}, n_boundary={k}")
    t = np.asarray(statistic, dtype=float)
    m = df - k
    p = np.zeros_like(t)
    for j in range(k + 1):
        w = comb(k, j) / 2.0**k
        dof = m + j
        p = p + w * (stats.chi2.sf(t, dof) if dof > 0 else (t <= 0).astype(float))
    return p if p.ndim else float(p)


def compare(*fits, names=None):
    """Log-likelihood, OFV, parameters and information criteria of several fits.

    Parameters
    ----------
    *fits : NLMEPopulationEstimator or PopulationFitResult
        Fits of the same data with the exact (importance) likelihood.
    names : list of str, default=None
        Row labels; ``model0, model1, ...`` when None.

    Returns
    -------
    table : DataFrame
        One row per fit: ``loglik``, ``ofv`` (``-2 loglik``, as NONMEM's),
        ``k`` (free parameters), ``aic``, ``bic`` (``n`` = observations),
        ``delta_ofv`` (OFV minus the smallest) and ``n_observations``.

    Raises
    ------
    ValueError
        For an amortized fit, or fits of different numbers of observations.

    Examples
    --------
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme.population import NLMEPopulationEstimator, compare
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(20, random_state=0)
    >>> post = ExactGaussianPosterior(model).fit()
    >>> a = NLMEPopulationEstimator(post, n_samples=50, n_starts=1, random_state=0).fit(X)
    >>> list(compare(a, a, names=["a", "b"]).columns)
    ['loglik', 'ofv', 'k', 'aic', 'bic', 'delta_ofv', 'n_observations']
    """
    if not fits:
        raise ValueError("compare needs at least one fit")
    names = [f"model{i}" for i in range(len(fits))] if names is None else list(names)
    if len(names) != len(fits) or len(set(names)) != len(names):
        raise ValueError(f"need {len(fits)} unique names, got {names}")
    results = [_result(f, n) for f, n in zip(fits, names, strict=True)]
    for res, name in zip(results, names, strict=True):
        _exact(res, name)
    n_obs = {res.n_observations for res in results}
    if len(n_obs) > 1:
        raise ValueError(f"the fits have different numbers of observations {sorted(n_obs)}")
    table = pd.DataFrame(
        {
            "loglik": [r.loglik for r in results],
            "ofv": [-2.0 * r.loglik for r in results],
            "k": [len(r.x) for r in results],
            "aic": [r.aic for r in results],
            "bic": [r.bic for r in results],
        },
        index=pd.Index(names, name="model"),
    )
    table["delta_ofv"] = table["ofv"] - table["ofv"].min()
    table["n_observations"] = [r.n_observations for r in results]
    return table


def likelihood_ratio_test(reduced, full, boundary="auto"):
    """Likelihood-ratio test of a reduced model nested in a full one.

    Parameters
    ----------
    reduced, full : NLMEPopulationEstimator or PopulationFitResult
        Fits of the same data with the exact (importance) likelihood; the free
        parameter names of ``reduced`` must be a subset of those of ``full``.
    boundary : "auto" or int, default="auto"
        Number of the extra parameters that are variance components on the
        boundary. ``"auto"``: the random effects of ``full`` absent from
        ``reduced`` (their ``log_var(...)`` entries), plus ``log_df`` where
        ``reduced`` has normal random effects and ``full`` Student-t ones
        (the normal is the t's boundary ``1 / df = 0``).

    Returns
    -------
    test : dict
        ``statistic`` (``2 (loglik_full - loglik_reduced)``, clipped at 0:
        a slightly negative value is Monte-Carlo noise), ``df``,
        ``n_boundary``, ``pvalue`` (mixture where ``n_boundary > 0``) and
        ``pvalue_naive`` (plain ``chi2(df)``, conservative on the boundary).

    Raises
    ------
    ValueError
        Amortized fits, fits of different data, or non-nested parameter sets.

    Examples
    --------
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme.population import NLMEPopulationEstimator, likelihood_ratio_test
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(20, random_state=0)
    >>> post = ExactGaussianPosterior(model).fit()
    >>> full = NLMEPopulationEstimator(post, n_samples=50, n_starts=1, random_state=0).fit(X)
    >>> red = NLMEPopulationEstimator(post, random_effects=[], n_samples=50, n_starts=1,
    ...                               random_state=0).fit(X)
    >>> test = likelihood_ratio_test(red, full)
    >>> test["df"], test["n_boundary"], bool(test["pvalue"] < 0.05)
    (1, 1, True)
    """
    red, ful = _result(reduced, "reduced"), _result(full, "full")
    _exact(red, "reduced")
    _exact(ful, "full")
    if red.n_observations != ful.n_observations or list(red.ess.index) != list(ful.ess.index):
        raise ValueError(
            "reduced and full are fits of different data (individuals or observations)"
        )
    extra = [n for n in ful.x_names if n not in set(red.x_names)]
    missing = [n for n in red.x_names if n not in set(ful.x_names)]
    if missing:
        raise ValueError(
            f"the models are not nested: parameters {missing} of reduced are not free in full"
        )
    if not extra:
        raise ValueError("full has no parameter that reduced lacks: nothing to test")
    if boundary == "auto":
        re_red = set(red.layout.random_effects)
        n_boundary = sum(p not in re_red for p in ful.layout.random_effects)
        if "log_df" in extra and red.layout.distribution == "normal":
            n_boundary += 1
    else:
        n_boundary = int(boundary)
    stat = max(0.0, 2.0 * (ful.loglik - red.loglik))
    df = len(extra)
    return {
        "statistic": stat,
        "df": df,
        "n_boundary": n_boundary,
        "pvalue": mixture_chi2_sf(stat, df, n_boundary),
        "pvalue_naive": float(stats.chi2.sf(stat, df)),
        "extra_parameters": extra,
    }
