"""compare and likelihood_ratio_test on linear-Gaussian populations (closed-form truth)."""

import warnings

import numpy as np
import pytest
from scipy import stats

from sknlme.models import LinearGaussian
from sknlme.population import (
    NLMEPopulationEstimator,
    compare,
    likelihood_ratio_test,
    mixture_chi2_sf,
)
from sknlme.posterior import ExactGaussianPosterior

SIGMA, T = 0.3, 5


def _null_data(n, seed, sd=0.0, wt_effect=0.0):
    """Intercept model y_ij = theta_i + sigma eps, theta_i ~ N(1 + b WT_i, sd^2)."""
    model = LinearGaussian(n_params=1, sigma=SIGMA)
    rng = np.random.default_rng(seed)
    wt = rng.normal(0.0, 1.0, n)
    phi = 1.0 + wt_effect * wt + sd * rng.standard_normal(n)
    X, _ = model.simulate(phi=phi[:, None], random_state=seed + 1)
    X.insert(0, "WT", wt)
    return model, X


def _fit(post, X, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return NLMEPopulationEstimator(post, n_samples=50, n_starts=1, random_state=0, **kw).fit(X)


def _closed_form_T(ybar):
    """Exact LR statistic of var(theta) = 0 for the balanced intercept model.

    ybar_i ~ N(theta, v) with v = sigma^2 / T + psi, and the within-individual
    residuals do not depend on (theta, psi); so the profile log-likelihood is
    that of n normal means, v_hat = max(sigma^2 / T, mean (ybar - mean ybar)^2).
    """
    n = ybar.shape[-1]
    v0 = SIGMA**2 / T
    s2 = np.var(ybar, axis=-1)
    v1 = np.maximum(v0, s2)
    return n * (np.log(v0 / v1) + s2 / v0 - s2 / v1)


def test_mixture_weights():
    assert mixture_chi2_sf(0.0, 1, 1) == 1.0  # P(T >= 0)
    assert mixture_chi2_sf(1e-9, 1, 1) == pytest.approx(0.5, abs=1e-4)
    # k = 2 boundary components: 1/4 chi2(0) + 1/2 chi2(1) + 1/4 chi2(2)
    t = 3.0
    ref = 0.5 * stats.chi2.sf(t, 1) + 0.25 * stats.chi2.sf(t, 2)
    assert mixture_chi2_sf(t, 2, 2) == pytest.approx(ref)
    assert mixture_chi2_sf(t, 3) == pytest.approx(stats.chi2.sf(t, 3))
    with pytest.raises(ValueError, match="n_boundary"):
        mixture_chi2_sf(t, 1, 2)


def test_boundary_mixture_is_calibrated():
    """Rejection at 5 % under the null with the mixture, over 4000 exact replicates.

    The mixture is asymptotic: with ``n`` individuals the ML variance is biased
    down and ``P(T = 0) = P(chi2(n - 1) < n)``, above 1/2 by ~ ``(5/3) / sqrt(4 pi n)``
    (0.086 at n = 30, where the test rejects at ~3 %; 0.015 at n = 1000).
    With n = 1000 the rate's bias is below ~0.003. Binomial SE of a 5 % rate
    over 4000 replicates: sqrt(.05 .95 / 4000) = 0.0034; tolerance 4 SE + 0.003.
    The naive chi2(1) p-value rejects at about half the rate (2.5 %).
    """
    rng = np.random.default_rng(0)
    n_rep, n = 4000, 1000
    ybar = 1.0 + SIGMA / np.sqrt(T) * rng.standard_normal((n_rep, n))
    t = _closed_form_T(ybar)
    p = mixture_chi2_sf(t, 1, n_boundary=1)
    se = np.sqrt(0.05 * 0.95 / n_rep)
    assert abs(np.mean(p < 0.05) - 0.05) < 4 * se + 0.003
    assert abs(np.mean(stats.chi2.sf(t, 1) < 0.05) - 0.025) < 4 * se + 0.003
    # the point mass at 0: 1/2 + 0.015 (bias above) within 4 binomial SEs
    assert abs(np.mean(t == 0) - 0.515) < 4 * np.sqrt(0.25 / n_rep)
    # above it, the p-values are uniform on (0, 0.5)
    assert stats.kstest(2 * p[t > 0], "uniform").pvalue > 0.001


def test_fitted_null_replicates_match_closed_form():
    """likelihood_ratio_test on fits gives the exact statistic (to MC error) under the null.

    The importance log-likelihoods have MC SE <= 0.03 each (adaptive re-scoring),
    so T = 2 dLL is within 2 * 4 * 0.03 * sqrt(2) ~ 0.35 of the exact value;
    the full fit's variance sits at its lower bound, not at 0 (a further ~0.05).
    """
    ts, ps = [], []
    for seed in range(12):
        model, X = _null_data(20, seed)
        post = ExactGaussianPosterior(model).fit()
        test = likelihood_ratio_test(_fit(post, X, random_effects=[]), _fit(post, X))
        assert (test["df"], test["n_boundary"]) == (1, 1)
        ybar = np.stack([r.values[:, 0] for r in X["records"]]).mean(axis=1)
        ts.append((test["statistic"], _closed_form_T(ybar)))
        ps.append(test["pvalue"])
    ts = np.array(ts)
    np.testing.assert_allclose(ts[:, 0], ts[:, 1], atol=0.4)
    ps = np.array(ps)
    assert np.all((ps <= 0.5 + 1e-12) | (ts[:, 0] == 0))


def test_rejects_false_reduced_model():
    model, X = _null_data(30, 5, sd=0.5, wt_effect=0.6)
    post = ExactGaussianPosterior(model).fit()
    no_re = _fit(post, X, random_effects=[], covariates={"WT": ["theta0"]})
    no_wt = _fit(post, X)
    full = _fit(post, X, covariates={"WT": ["theta0"]})
    test = likelihood_ratio_test(no_re, full)
    assert test["n_boundary"] == 1 and test["pvalue"] < 1e-6
    test = likelihood_ratio_test(no_wt, full)
    assert test["n_boundary"] == 0 and test["extra_parameters"] == ["WT:theta0"]
    assert test["pvalue"] < 1e-3 and test["pvalue"] == test["pvalue_naive"]
    table = compare(no_re, no_wt, full, names=["no_re", "no_wt", "full"])
    assert table["delta_ofv"].idxmin() == "full"
    assert table.loc["full", "k"] == 3 and table.loc["no_re", "k"] == 2
    np.testing.assert_allclose(table["ofv"], -2 * table["loglik"])
    np.testing.assert_allclose(table["aic"] - table["ofv"], 2 * table["k"])
    # not nested: covariate in one, random effect in the other
    with pytest.raises(ValueError, match="not nested"):
        likelihood_ratio_test(no_wt, no_re)


def test_refuses_amortized_and_other_data():
    model, X = _null_data(15, 1, sd=0.5)
    post = ExactGaussianPosterior(model).fit()
    amortized = _fit(post, X, likelihood="amortized")
    exact = _fit(post, X)
    with pytest.raises(ValueError, match="amortized"):
        compare(amortized, exact)
    with pytest.raises(ValueError, match="amortized"):
        likelihood_ratio_test(amortized, exact)
    other = _fit(post, _null_data(16, 2, sd=0.5)[1], random_effects=[])
    with pytest.raises(ValueError, match="different"):
        likelihood_ratio_test(other, exact)
    with pytest.raises(TypeError, match="fitted"):
        compare(object())
    with pytest.raises(ValueError, match="names"):
        compare(exact, exact, names=["a", "a"])
