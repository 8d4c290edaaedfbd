"""Bootstrap and case deletion on a linear-Gaussian population (closed-form reference)."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sknlme.models import LinearGaussian
from sknlme.population import (
    BootstrapResult,
    ImportanceObjective,
    NLMEPopulationEstimator,
    bca_interval,
    bootstrap,
    case_deletion,
)
from sknlme.population._resample import subset_objective
from sknlme.posterior import ExactGaussianPosterior


@pytest.fixture(scope="module")
def fits():
    model = LinearGaussian(n_params=2, sigma=0.2)
    rng = np.random.default_rng(3)
    phi = np.array([1.0, -0.5]) + np.array([0.5, 0.6]) * rng.standard_normal((100, 2))
    X, _ = model.simulate(phi=phi, random_state=4)
    post = ExactGaussianPosterior(model).fit()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = {
            "amortized": NLMEPopulationEstimator(
                post, likelihood="amortized", n_samples=200, n_starts=2, random_state=0
            ).fit(X)
        }
    return X, out


def test_subset_matches_rows(fits):
    X, out = fits
    pop = out["amortized"]
    base = pop.result_.objective
    # an importance objective on the same draws, small enough to be quick
    imp = ImportanceObjective(base, pop.posterior.model, X, 50, random_state=0)
    rows = np.array([3, 3, 0, 7])
    for obj in (base, imp):
        sub = subset_objective(obj, rows)
        np.testing.assert_allclose(
            sub.individual_loglik(pop.x_), obj.individual_loglik(pop.x_)[rows], rtol=1e-10
        )
        assert sub(pop.x_) == pytest.approx(-obj.individual_loglik(pop.x_)[rows].sum())
    with pytest.raises(ValueError, match="rows"):
        subset_objective(base, [base.n])


def test_bootstrap_se_matches_hessian(fits):
    """Bootstrap SE ~ inverse-Hessian SE (the parametric, asymptotic reference).

    With B = 300 replicates the relative MC SE of an SD estimate is
    1/sqrt(2(B - 1)) = 4.1 %; 3 of them = 12 %. The two estimate the same
    O(1/n) variance and differ by O(n^-1/2) terms: ~10 % at n = 100 (log-variances
    of a normal sample, Var(log s^2) = 2/(n-1) vs the bootstrap's kurtosis
    term). Tolerance 25 %.
    """
    _, out = fits
    pop = out["amortized"]
    boot = bootstrap(pop, n_boot=300, random_state=0, n_jobs=2)
    assert boot.n_failed == 0 and boot.replicates.shape == (300, 4)
    ratio = boot.standard_errors / pop.standard_errors_
    np.testing.assert_allclose(ratio, 1.0, atol=0.25)
    # intervals cover the estimate and are near the Wald ones (same tolerance on
    # the half-widths, plus 2 MC SE of a 2.5 % quantile's position)
    wald = 1.96 * pop.standard_errors_
    for method in ("percentile", "bca"):
        table = boot.intervals(method)
        assert (table["lower"] < table["estimate"]).all()
        assert (table["estimate"] < table["upper"]).all()
        np.testing.assert_allclose((table["upper"] - table["lower"]) / (2 * wald), 1.0, atol=0.3)
    with pytest.raises(ValueError, match="method"):
        boot.intervals("basic")


def test_bootstrap_validation(fits):
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap(fits[1]["amortized"], n_boot=1)


def test_bca_against_scipy():
    """BCa of a mean: ours and scipy's on independent resamples, B = 4000 each.

    A 2.5 % quantile of B replicates has MC SE ~ sqrt(q(1-q)/B) / f(x_q), about
    0.05 SDs of the replicate distribution: tolerance 4 x that x sqrt(2).
    """
    x = np.random.default_rng(0).exponential(size=40)
    boot = np.random.default_rng(1).choice(x, (4000, 40)).mean(axis=1)[:, None]
    jack = np.array([np.delete(x, i).mean() for i in range(40)])[:, None]
    lo, hi = bca_interval([x.mean()], boot, jack)
    ref = stats.bootstrap((x,), np.mean, n_resamples=4000, method="BCa", random_state=2)
    tol = 4 * np.sqrt(2) * 0.05 * boot.std()
    assert lo[0] == pytest.approx(ref.confidence_interval.low, abs=tol)
    assert hi[0] == pytest.approx(ref.confidence_interval.high, abs=tol)
    # skewed data: BCa moves both bounds right of the percentile ones
    assert lo[0] > np.quantile(boot, 0.025)
    res = BootstrapResult(
        pd.Series({"m": x.mean()}),
        pd.DataFrame(boot, columns=["m"]),
        pd.DataFrame(jack, columns=["m"]),
        0,
        1.0,
    )
    assert res.intervals("bca").loc["m", "lower"] == pytest.approx(lo[0])


def test_case_deletion_finds_outlier(fits):
    X, out = fits
    X = X.copy()
    model = out["amortized"].posterior.model
    rec = X["records"].iloc[5]
    phi = np.array([[6.0, -0.5]])  # theta0 ~ 10 SDs out
    X5, _ = model.simulate(phi=phi, random_state=9)
    X.iloc[5, X.columns.get_loc("records")] = X5["records"].iloc[0]
    assert rec is not X["records"].iloc[5]
    post = out["amortized"].posterior
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pop = NLMEPopulationEstimator(
            post, likelihood="amortized", n_samples=200, n_starts=2, random_state=0
        ).fit(X)
    table = case_deletion(pop, n_jobs=2)
    assert table["delta_ofv"].idxmax() == X.index[5]
    assert table["cook"].idxmax() == X.index[5]
    # dropping the outlier lowers theta0's mean by ~ (6 - 1) / 100 = 0.05
    assert table.loc[X.index[5], "delta_theta0"] == pytest.approx(-0.05, abs=0.02)
    # the likelihood displacement is >= 0 (optimiser tolerance)
    assert (table["delta_ofv"] > -1e-3).all()


def test_fast_refits_match_plain_scipy_refits(fits):
    """The bootstrap's refits equal plain L-BFGS-B on freshly built objectives.

    The plain path: a new PopulationObjective on the resampled draws (same layout,
    bounds from the full fit), minimised by scipy without thread limits, from the same
    estimate. Same function and start, so the replicates agree to the optimiser's
    tolerance (pgtol 1e-5 on gradients of O(n) curvature: ~1e-6 in x; 1e-4 allowed),
    and the percentile intervals, quantiles of the same 20 numbers, to the same.
    """
    from scipy.optimize import minimize

    from sknlme.population import PopulationObjective

    _, out = fits
    res = out["amortized"].result_
    obj = res.objective
    boot = bootstrap(res, n_boot=20, random_state=5, n_jobs=1, bca=False)
    rng = np.random.RandomState(5)
    sets = [rng.randint(0, obj.n, size=obj.n) for _ in range(20)]
    lb, ub = obj.bounds
    plain = []
    for rows in sets:
        sub = PopulationObjective(
            obj.samples[rows],
            obj.log_offsets[rows],
            obj.layout.param_names,
            bounds=dict(zip(obj.x_names, zip(lb, ub, strict=True), strict=True)),
        )
        fit = minimize(
            sub.value_and_gradient,
            boot.estimate.to_numpy(),
            jac=True,
            method="L-BFGS-B",
            bounds=list(zip(lb, ub, strict=True)),
        )
        plain.append(fit.x)
    plain = pd.DataFrame(plain, columns=boot.replicates.columns)
    np.testing.assert_allclose(boot.replicates.to_numpy(), plain.to_numpy(), atol=1e-4)
    ref = plain.quantile([0.025, 0.975]).to_numpy()
    table = boot.intervals("percentile")
    np.testing.assert_allclose(table[["lower", "upper"]].to_numpy().T, ref, atol=1e-4)


def test_importance_bootstrap_replicates_are_the_exact_mles_of_their_samples():
    """An importance fit's replicates are re-optimised by re-centred fixed-proposal
    surrogates (not central differences) and land on the exact maximum likelihood of
    their resampled individuals (closed form here).

    Tolerance: the fit's objective has an MC SE below 0.1 (the polish's target), so
    its optimum differs from the exact one by at most about 0.1 / sqrt(curvature) per
    parameter, 0.1 of an SE; the fixed-point iteration stops at steps of 1e-3. 0.15 SE
    (SEs from the replicates' own curvature, the full fit's Wald SEs) covers both.
    """
    from scipy.optimize import minimize

    model = LinearGaussian(n_params=1, sigma=0.3)
    rng = np.random.default_rng(7)
    X, _ = model.simulate(phi=0.4 + 0.7 * rng.standard_normal((30, 1)), random_state=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pop = NLMEPopulationEstimator(
            ExactGaussianPosterior(model).fit(), n_samples=50, n_starts=1, random_state=0
        ).fit(X)
    assert pop.likelihood_ == "importance"
    boot = bootstrap(pop, n_boot=6, random_state=2, bca=False)
    rs = np.random.RandomState(2)
    sets = [rs.randint(0, 30, size=30) for _ in range(6)]
    se = np.sqrt(np.diag(pop.result_.covariance_x))

    def exact(v, rows):
        terms = model.marginal_loglik(X, v[:1], np.exp(v[1:]).reshape(1, 1))
        return -terms[rows].sum()

    assert boot.n_failed == 0
    for rows, x in zip(sets, boot.replicates.to_numpy(), strict=True):
        ml = minimize(exact, x, args=(rows,), method="Nelder-Mead", options={"xatol": 1e-6}).x
        np.testing.assert_array_less(np.abs(x - ml), 0.15 * se)
