"""Group-specific random-effect variances and Student t random effects.

Exact checks on the linear-Gaussian model (closed-form marginal likelihood
and posterior), recovery on simulated studies, and analytic gradients
against central differences.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from sknlme.models import LinearGaussian
from sknlme.population import (
    FixedProposalSurrogate,
    ImportanceObjective,
    NLMEPopulationEstimator,
    PopulationObjective,
    amortized_offsets,
    likelihood_ratio_test,
    parameter_table,
)
from sknlme.posterior import ExactGaussianPosterior

SIGMA = 0.3  # residual SD of the linear-Gaussian model (1 parameter: y_ij = theta + e)


def _central(fun, x, h=1e-6):
    out = np.empty(x.size)
    for j in range(x.size):
        e = np.zeros(x.size)
        e[j] = h
        out[j] = (fun(x + e) - fun(x - e)) / (2 * h)
    return out


def _study(phi, seed, labels=None):
    model = LinearGaussian(n_params=1, sigma=SIGMA)
    X, _ = model.simulate(phi=np.asarray(phi, dtype=float)[:, None], random_state=seed)
    if labels is not None:
        X["CELL_LINE"] = labels
    return model, X


def _mc_se(objective, x):
    """Monte-Carlo SE of each log L_i estimate, ``sqrt(1/ESS - 1/K)`` (delta method)."""
    w = objective.weights(x)
    return np.sqrt(np.maximum(1.0 / np.sum(w**2, axis=1) - 1.0 / w.shape[1], 0.0))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"variance_groups": ("G", np.repeat(["A", "B"], 20), ["a"])},
        {"random_effects_distribution": "student_t"},
        {"random_effects_distribution": "student_t", "df": 4.0},
        {
            "variance_groups": ("G", np.tile(["A", "B", "C"], 14)[:40], ["a", "b"]),
            "random_effects_distribution": "student_t",
        },
    ],
)
def test_amortized_gradient_matches_central_differences(kwargs):
    rng = np.random.default_rng(0)
    phi = rng.standard_t(3, size=(40, 30, 2)) * 0.5 + [1.0, -1.0]
    C = rng.normal(size=(40, 1))
    obj = PopulationObjective(
        phi, rng.normal(size=(40, 30)), ["a", "b"], covariates=C,
        covariate_effects={"x0": ["a"]}, **kwargs,
    )  # fmt: skip
    x = obj.pack(beta=[0.8, -1.2], cov=np.diag([0.3, 0.5]), df=5.0)
    x = x + rng.normal(size=obj.n_x) * 0.1
    f, g = obj.value_and_gradient(x)
    # central differences with h = 1e-6: truncation ~h^2 |f'''| and rounding ~eps |f| / h
    # = 2e-16 * 60 / 1e-6 ~ 1e-8, so 1e-6 relative (plus 1e-6 absolute) is ample
    np.testing.assert_allclose(g, _central(obj, x), rtol=1e-6, atol=1e-6)
    assert np.isclose(obj.individual_loglik(x).sum(), -f)


def test_grouped_importance_marginal_matches_closed_form_and_surrogate_gradient():
    n = 40
    labels = np.repeat(["A", "B"], n // 2)
    model, X = _study(np.zeros(n), seed=1, labels=labels)
    draws = ExactGaussianPosterior(model).fit().sample(X, 50, random_state=0)
    base = PopulationObjective(
        draws, amortized_offsets(draws, model.prior_mean, model.prior_cov), ["theta0"],
        variance_groups=("CELL_LINE", labels, ["theta0"]),
    )  # fmt: skip
    obj = ImportanceObjective(base, model, X, 1000, random_state=0)
    assert obj.x_names == ["theta0", "log_var(theta0)[CELL_LINE=A]", "log_var(theta0)[CELL_LINE=B]"]
    x = obj.pack(beta=[0.1], group_var=[[0.04], [0.36]])
    var = np.where(labels == "A", 0.04, 0.36)
    exact = model.marginal_loglik(X, np.array([0.1]), var[:, None, None])
    diff = obj.individual_loglik(x) - exact
    # each estimate within 4 of its own Monte-Carlo SEs, and so is the sum
    se = _mc_se(obj, x)
    assert np.all(np.abs(diff) < 4 * se + 1e-9)
    assert abs(diff.sum()) < 4 * np.sqrt(np.sum(se**2))
    # the amortized objective on exact posterior draws estimates log L_i - log p(y_i),
    # p(y_i) the marginal under the training prior: same closed form, same tolerance
    evidence = model.marginal_loglik(X, model.prior_mean, model.prior_cov)
    diff = base.individual_loglik(x) + evidence - exact
    se = _mc_se(base, x)
    assert np.all(np.abs(diff) < 4 * se + 1e-9)
    sur = FixedProposalSurrogate(obj, x)
    assert sur(x) == pytest.approx(obj(x), rel=1e-12)
    x2 = x + [0.05, -0.1, 0.1]
    np.testing.assert_allclose(sur.gradient(x2), _central(sur, x2), rtol=1e-6, atol=1e-6)


def _t_marginal(y, m, scale, nu):
    """log ∫ prod_j N(y_j; theta, SIGMA^2) t_nu(theta; m, scale) dtheta by adaptive quadrature."""
    ybar, T = y.mean(), y.size
    # the likelihood as a function of theta is proportional to N(theta; ybar, SIGMA^2 / T)
    log_c = np.sum(stats.norm.logpdf(y, ybar, SIGMA)) - stats.norm.logpdf(
        ybar, ybar, SIGMA / np.sqrt(T)
    )

    def f(t):
        return stats.norm.pdf(t, ybar, SIGMA / np.sqrt(T)) * stats.t.pdf(t, nu, m, scale)

    val, _ = integrate.quad(f, -np.inf, np.inf, points=None, epsabs=0, epsrel=1e-10, limit=200)
    return log_c + np.log(val)


def test_student_t_importance_loglik_matches_quadrature():
    rng = np.random.default_rng(2)
    n = 20
    model, X = _study(0.3 * rng.standard_t(3, size=n), seed=3)
    draws = ExactGaussianPosterior(model).fit().sample(X, 50, random_state=0)
    base = PopulationObjective(
        draws, amortized_offsets(draws, model.prior_mean, model.prior_cov), ["theta0"],
        random_effects_distribution="student_t",
    )  # fmt: skip
    obj = ImportanceObjective(base, model, X, 2000, random_state=0)
    x = obj.pack(beta=[0.05], cov=[[0.09]], df=3.0)
    study = model.prepare(X)
    values, mask = study.padded.values[..., 0], study.padded.value_mask()[..., 0]
    exact = np.array([_t_marginal(values[i][mask[i]], 0.05, 0.3, 3.0) for i in range(n)])
    diff = obj.individual_loglik(x) - exact
    se = _mc_se(obj, x)  # as above: 4 Monte-Carlo SEs per individual and for the sum
    assert np.all(np.abs(diff) < 4 * se + 1e-9)
    assert abs(diff.sum()) < 4 * np.sqrt(np.sum(se**2))
    # the surrogate carries the t: same value at its centre, gradient (incl. log_df) checked
    sur = FixedProposalSurrogate(obj, x)
    assert sur(x) == pytest.approx(obj(x), rel=1e-12)
    x2 = x + [0.05, -0.1, 0.2]
    np.testing.assert_allclose(sur.gradient(x2), _central(sur, x2), rtol=1e-6, atol=1e-6)


def _within(pop, name, truth, k=3.0):
    i = pop.x_names_.index(name)
    return abs(pop.x_[i] - truth) < k * pop.standard_errors_.iloc[i]


def test_two_groups_variances_recovered_and_predictions_use_own_variance():
    rng = np.random.default_rng(4)
    labels = np.repeat(["A", "B"], 150)
    sd = np.where(labels == "A", 0.2, 0.6)
    model, X = _study(0.5 + sd * rng.normal(size=300), seed=5, labels=labels)
    post = ExactGaussianPosterior(model).fit()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pop = NLMEPopulationEstimator(
            post, variance_groups={"CELL_LINE": ["theta0"]}, n_samples=50, n_starts=2,
            random_state=0,
        ).fit(X)  # fmt: skip
    assert pop.likelihood_ == "importance"  # the default refinement ran
    a, b = "log_var(theta0)[CELL_LINE=A]", "log_var(theta0)[CELL_LINE=B]"
    assert _within(pop, a, np.log(0.04)) and _within(pop, b, np.log(0.36))
    ia, ib = pop.x_names_.index(a), pop.x_names_.index(b)
    se = pop.standard_errors_.to_numpy()
    # distinguished: Wald z of the difference (independent groups) above 3
    assert (pop.x_[ib] - pop.x_[ia]) / np.hypot(se[ia], se[ib]) > 3
    assert list(pop.random_effects_.index) == ["theta0[CELL_LINE=A]", "theta0[CELL_LINE=B]"]
    rows = pop.summary()["parameter"].tolist()
    assert "SD(theta0)[CELL_LINE=B]" in rows and "Var(theta0)[CELL_LINE=A]" in rows
    # conditional means against the closed-form posterior under each individual's own
    # variance: y_ij = theta + e, prior N(beta, s_g^2)
    beta = pop.fixed_effects_["theta0"]
    var = np.exp(np.where(labels == "A", pop.x_[ia], pop.x_[ib]))
    study = model.prepare(X)
    y, mask = study.padded.values[..., 0], study.padded.value_mask()[..., 0]
    prec = 1 / var + mask.sum(1) / SIGMA**2
    exact = (beta / var + np.where(mask, y, 0).sum(1) / SIGMA**2) / prec
    pred = pop.predict(X)["theta0"].to_numpy()
    # the importance-weighted mean has MC SE ~ posterior SD / sqrt(ESS); ESS >= 50 of
    # the 500 evaluation draws here (proposals built on the exact posterior), so 4 of
    # those SEs is 4 / sqrt(50) = 0.57 posterior SDs
    np.testing.assert_array_less(np.abs(pred - exact), 0.57 / np.sqrt(prec))
    with pytest.raises(NotImplementedError, match="variance_groups"):
        pop.individual_table(X)  # residual tables assume one normal Omega (not yet)


def test_grouped_variances_bad_inputs():
    model, X = _study(np.zeros(10), seed=0, labels=np.repeat(["A", "B"], 5))
    post = ExactGaussianPosterior(model).fit()
    two = np.zeros((4, 5, 2))
    for kwargs in ({"variance_groups": ("G", list("ABAB"), ["a"])},
                   {"random_effects_distribution": "student_t"}):  # fmt: skip
        with pytest.raises(ValueError, match="needs covariance='diag'"):
            PopulationObjective(two, np.zeros((4, 5)), ["a", "b"], covariance="cholesky", **kwargs)
    with pytest.raises(ValueError, match="'SITE' is not a column"):
        NLMEPopulationEstimator(post, variance_groups={"SITE": ["theta0"]}, n_starts=1).fit(X)
    X2 = X.copy()
    X2.loc[X2.index[3], "CELL_LINE"] = None
    with pytest.raises(ValueError, match="individual .* is missing"):
        NLMEPopulationEstimator(post, variance_groups={"CELL_LINE": "theta0"}, n_starts=1).fit(X2)
    with pytest.raises(ValueError, match="df is given"):
        NLMEPopulationEstimator(post, df=3.0, n_starts=1).fit(X)
    phi = np.zeros((4, 5, 1))
    with pytest.raises(ValueError, match="individual row 2 has variance group 'C'"):
        PopulationObjective(
            phi, np.zeros((4, 5)), ["a"], variance_groups=("G", ["A", "B", "C", "A"], ["a"]),
            group_levels=["A", "B"],
        )  # fmt: skip


def _t_data(seed, n=300, df=3.0):
    rng = np.random.default_rng(seed)
    eta = rng.standard_t(df, size=n) if np.isfinite(df) else rng.normal(size=n)
    return _study(0.5 + 0.3 * eta, seed=seed + 1)


def test_student_t_recovered_and_beats_normal_fit():
    model, X = _t_data(6)
    post = ExactGaussianPosterior(model).fit()
    fits = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for dist in ("student_t", "normal"):
            fits[dist] = NLMEPopulationEstimator(
                post, random_effects_distribution=dist, n_samples=50, n_starts=2,
                random_state=0,
            ).fit(X)  # fmt: skip
    t, normal = fits["student_t"], fits["normal"]
    assert t.x_names_ == ["theta0", "log_var(theta0)", "log_df"]
    assert _within(t, "log_var(theta0)", np.log(0.09)) and _within(t, "log_df", np.log(3.0))
    assert t.summary().set_index("parameter").loc["df", "kind"] == "df"
    # likelihood-ratio test of the normal (df -> inf, a boundary: 1/2 chi2_0 + 1/2 chi2_1)
    # inside the t: 2 delta must pass the 0.999 quantile of chi2_1 (10.83) plus 4 MC SEs of
    # the two log-likelihood estimates
    margin = 10.83 + 4 * 2 * np.hypot(t.loglik_mc_se_, normal.loglik_mc_se_)
    assert 2 * (t.loglik_ - normal.loglik_) > margin
    assert t.aic_ < normal.aic_
    test = likelihood_ratio_test(normal, t)
    assert (test["df"], test["n_boundary"], test["extra_parameters"]) == (1, 1, ["log_df"])
    assert test["pvalue"] == pytest.approx(test["pvalue_naive"] / 2) and test["pvalue"] < 1e-3
    # profile ends on log_df / log_var map onto the df and SD rows of the parameter table
    frame = pd.DataFrame(
        {"parameter": ["log_df", "log_var(theta0)"], "lower": [0.5, -3.0], "upper": [1.5, -2.0]}
    )
    table = parameter_table(t.result_, profile=frame).set_index("parameter")
    np.testing.assert_allclose(
        table.loc["df", ["profile_lower", "profile_upper"]], np.exp([0.5, 1.5])
    )
    np.testing.assert_allclose(
        table.loc["SD(theta0)", ["profile_lower", "profile_upper"]], np.exp([-1.5, -1.0])
    )


def test_df_estimated_large_on_normal_data_and_fixed_df():
    model, X = _t_data(8, df=np.inf)
    post = ExactGaussianPosterior(model).fit()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pop = NLMEPopulationEstimator(
            post, random_effects_distribution="student_t", likelihood="amortized",
            n_samples=100, n_starts=2, random_state=0,
        ).fit(X)  # fmt: skip
        fixed = NLMEPopulationEstimator(
            post, random_effects_distribution="student_t", df=4.0, likelihood="amortized",
            n_samples=100, n_starts=2, random_state=0,
        ).fit(X)  # fmt: skip
    # the t's excess kurtosis is 6 / (df - 4); the sample kurtosis of N = 300 normal
    # effects has SE sqrt(24 / 300) = 0.28, so its 2-SE band (0.57) allows df > 4 + 6 / 0.57
    # = 14.5 only; the fit should not claim heavier tails than that
    assert np.exp(pop.x_[pop.x_names_.index("log_df")]) > 14.5
    assert fixed.x_names_ == ["theta0", "log_var(theta0)"]
    assert fixed.predict(X).shape == (300, 1)
