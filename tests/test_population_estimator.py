"""NLMEPopulationEstimator against the closed-form linear-Gaussian population.

For ``LinearGaussian`` (``y_i = A phi_i + sigma eps``, normal prior) the
marginal likelihood ``∫ p(y_i|phi) N(phi; m_i, Psi) dphi`` is exact
(``marginal_loglik``), so the maximum-likelihood estimate is computed with
SciPy as the reference, and ``ExactGaussianPosterior`` replaces the network.
"""

import pickle
import warnings

import numpy as np
import pandas as pd
import pypesto.optimize
import pytest
from scipy.optimize import minimize

from sknlme.models import LinearGaussian, Model
from sknlme.population._estimator import NLMEPopulationEstimator
from sknlme.population._objective import PopulationObjective
from sknlme.posterior import ExactGaussianPosterior

BETA = np.array([1.0, -0.5])
SD = np.array([0.5, 0.6])
WT_EFFECT = 0.8


def simulate(n, seed=1, wt_effect=0.0):
    """Population with known truth; covariate WT (kg) shifts theta0 (per SD of WT)."""
    model = LinearGaussian(n_params=2, sigma=0.2)
    rng = np.random.default_rng(seed)
    wt = rng.normal(70.0, 10.0, n)
    phi = BETA + SD * rng.standard_normal((n, 2))
    phi[:, 0] += wt_effect * (wt - 70.0) / 10.0
    X, _ = model.simulate(phi=phi, random_state=seed + 1)
    X.insert(0, "WT", wt)
    return model, X


def reference_mle(model, X, C=None):
    """Closed-form ML estimate (beta, [B], log-variances) and its Hessian (diag Psi)."""
    C = np.zeros((len(X), 0)) if C is None else np.asarray(C, dtype=float)
    d, p = model.n_params, C.shape[1]

    def nll(theta):
        beta, B, lv = theta[:d], theta[d : d + p], theta[d + p :]
        means = beta + np.outer(C @ B, [1.0, 0.0]) if p else beta
        return -model.marginal_loglik(X, means, np.diag(np.exp(lv))).sum()

    best = min(
        (minimize(nll, x0, method="BFGS", options={"gtol": 1e-8}) for x0 in _starts(2 * d + p, d)),
        key=lambda r: r.fun,
    )
    return best.x, _num_hessian(nll, best.x), -best.fun


def _starts(n_x, d):
    return [np.r_[np.zeros(n_x - d), np.full(d, v)] for v in (-2.0, 0.0)]


def _num_hessian(f, x, h=1e-4):
    n = x.size
    H = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            e_i, e_j = np.eye(n)[i] * h, np.eye(n)[j] * h
            H[i, j] = (
                f(x + e_i + e_j) - f(x + e_i - e_j) - f(x - e_i + e_j) + f(x - e_i - e_j)
            ) / (4 * h * h)
    return 0.5 * (H + H.T)


@pytest.fixture(scope="module")
def population():
    model, X = simulate(80)
    return model, X, ExactGaussianPosterior(model).fit()


@pytest.fixture(scope="module")
def reference(population):
    model, X, _ = population
    return reference_mle(model, X)


@pytest.fixture(scope="module")
def fitted(population):
    _, X, post = population
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return NLMEPopulationEstimator(
            post, likelihood="amortized", n_samples=200, n_starts=3, random_state=0
        ).fit(X)


@pytest.mark.parametrize("likelihood", ["amortized", "importance"])
def test_recovers_closed_form_mle(population, reference, likelihood):
    _, X, post = population
    theta_ref, H, loglik_ref = reference
    se_ref = np.sqrt(np.diag(np.linalg.inv(H)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pop = NLMEPopulationEstimator(
            post, n_samples=200, n_starts=3, likelihood=likelihood, random_state=0
        ).fit(X)
    assert pop.x_names_ == ["theta0", "theta1", "log_var(theta0)", "log_var(theta1)"]
    # Tolerance. The estimate maximises a Monte-Carlo log-likelihood; its error is
    # H^-1 times the Monte-Carlo error of the score, whose variance is about the
    # statistical score variance (the Fisher information) divided by the effective
    # sample size per individual (ESS >= 20 of the 200 draws here), so the error is
    # below SE / sqrt(20) ~ 0.22 SE in standard deviation: 1 SE is > 4.5 MC sds.
    np.testing.assert_array_less(np.abs(pop.x_ - theta_ref), se_ref)
    # the estimator's SEs come from the (MC) Hessian: same curvature within 25 %
    np.testing.assert_allclose(pop.standard_errors_.to_numpy(), se_ref, rtol=0.25)
    if likelihood == "importance":
        # With the exact likelihood, loglik_ estimates the real log-likelihood at x_
        # from the 2000 re-scoring draws: log of a mean of weights, error sd about
        # 1/sqrt(ESS_i) per individual (delta method), bias -1/(2 ESS_i); 4 sds.
        exact = model_loglik(population[0], X, pop)
        inv_ess = 1.0 / pop.ess_.to_numpy()
        assert abs(pop.loglik_ - exact) < 4 * np.sqrt(inv_ess.sum()) + inv_ess.sum() / 2
        # the estimate is a near-maximum: 0.5 d^T H d with d ~ 0.22 SE per coordinate
        # is about 0.1 on average (chi2_4 * 0.22^2 / 2); 2 is far out in the tail
        assert 0 <= loglik_ref - exact < 2.0


def model_loglik(model, X, pop):
    cov = pop.covariance_.to_numpy()
    return model.marginal_loglik(X, pop.fixed_effects_.to_numpy(), cov).sum()


def test_truth_within_confidence_intervals(fitted):
    table = fitted.summary().set_index("parameter")
    truth = {"theta0": BETA[0], "theta1": BETA[1], "SD(theta0)": SD[0], "SD(theta1)": SD[1]}
    for name, value in truth.items():
        # 95 % Wald intervals: each misses with 5 % probability; the seed is fixed.
        assert table.loc[name, "ci_lower"] < value < table.loc[name, "ci_upper"], name
    assert list(table.columns) == [
        "kind",
        "estimate",
        "se",
        "rse_percent",
        "ci_lower",
        "ci_upper",
        "fixed",
    ]
    np.testing.assert_allclose(
        table.loc["Var(theta0)", "estimate"], fitted.random_effects_.iloc[0] ** 2
    )


def test_attributes(fitted, population):
    _, X, _ = population
    assert list(fitted.fixed_effects_.index) == ["theta0", "theta1"]
    assert fitted.covariate_effects_.shape == (0, 2)
    assert fitted.covariance_.shape == (2, 2)
    np.testing.assert_allclose(np.sqrt(np.diag(fitted.covariance_)), fitted.random_effects_)
    # amortized: the log-likelihood holds a constant, so no criteria (issue 11, item 4);
    # the formulas are checked on importance fits in test_population_safeguard
    assert np.isnan(fitted.aic_) and np.isnan(fitted.bic_) and np.isfinite(fitted.loglik_)
    assert 1 <= fitted.n_starts_converged_ <= 3 and fitted.n_starts_failed_ == 0
    assert len(fitted.optimize_result_.optimize_result) == 3
    assert fitted.n_features_in_ == 2
    assert list(fitted.feature_names_in_) == ["WT", "records"]
    assert fitted.ess_.index.equals(X.index) and (fitted.ess_ >= 1).all()


def test_predict_matches_exact_conditional_means(fitted, population):
    model, X, _ = population
    pred = fitted.predict(X)
    assert pred.index.equals(X.index) and list(pred.columns) == ["theta0", "theta1"]
    # Given the population N(beta, Psi), phi_i | y_i is Gaussian: the posterior of a
    # LinearGaussian whose prior is the population distribution.
    cond = LinearGaussian(
        n_params=2,
        sigma=model.sigma,
        prior_mean=fitted.fixed_effects_.to_numpy(),
        prior_cov=fitted.covariance_.to_numpy(),
    )
    means, covs = cond.exact_posterior(X)
    # self-normalised IS mean: error sd ~ posterior sd / sqrt(ESS); ESS >= 100 of
    # the 2000 draws -> 0.1 sd; 5 sds of that bound the 160 entries.
    sd = np.sqrt(np.diagonal(covs, axis1=1, axis2=2))
    assert np.all(
        np.abs(pred.to_numpy() - means) < 5 * sd / np.sqrt(fitted.ess_.to_numpy())[:, None]
    )


def test_score_is_mean_loglik(population):
    model, X, post = population
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pop = NLMEPopulationEstimator(
            post, n_samples=100, n_starts=2, likelihood="importance", random_state=0
        ).fit(X)
    exact = model.marginal_loglik(X, pop.fixed_effects_.to_numpy(), pop.covariance_.to_numpy())
    # mean over individuals of log-mean-weight errors: sd 1/sqrt(ESS_i) each and bias
    # -1/(2 ESS_i) (delta method); 4 sds of the mean plus the bias.
    inv_ess = 1.0 / pop.ess_.to_numpy()
    tol = 4 * np.sqrt(inv_ess.sum()) / len(X) + inv_ess.mean() / 2
    assert pop.score(X) == pytest.approx(exact.mean(), abs=tol)
    held_out = simulate(10, seed=7)[1]
    assert np.isfinite(pop.score(held_out))
    assert pop.score(X) == pop.score(X)  # fixed seed: deterministic


def test_covariate_effect_recovered():
    model, X = simulate(80, seed=3, wt_effect=WT_EFFECT)
    X["WT"] = (X["WT"] - 70.0) / 10.0
    post = ExactGaussianPosterior(model).fit()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pop = NLMEPopulationEstimator(
            post,
            likelihood="amortized",
            covariates={"WT": ["theta0"]},
            n_samples=200,
            n_starts=3,
            random_state=0,
        ).fit(X)
    assert pop.x_names_[2] == "WT:theta0"
    theta_ref, H, _ = reference_mle(model, X, C=X[["WT"]].to_numpy())
    se_ref = np.sqrt(np.diag(np.linalg.inv(H)))
    # same Monte-Carlo tolerance as test_recovers_closed_form_mle
    np.testing.assert_array_less(np.abs(pop.x_ - theta_ref), se_ref)
    assert pop.covariate_effects_.loc["WT", "theta1"] == 0.0
    assert abs(pop.covariate_effects_.loc["WT", "theta0"] - WT_EFFECT) < 3 * se_ref[2]


def test_cholesky_and_fixed(population):
    _, X, post = population
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pop = NLMEPopulationEstimator(
            post,
            likelihood="amortized",
            covariance="cholesky",
            fixed={"theta1": -0.5},
            n_samples=100,
            n_starts=2,
            random_state=0,
        ).fit(X)
    assert "theta1" not in pop.x_names_ and "chol(theta1,theta0)" in pop.x_names_
    assert pop.fixed_effects_["theta1"] == -0.5
    table = pop.summary().set_index("parameter")
    assert table.loc["theta1", "fixed"] and np.isnan(table.loc["theta1", "se"])
    assert -1 < table.loc["Corr(theta0,theta1)", "estimate"] < 1


def test_random_effects_subset(population):
    _, X, post = population
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pop = NLMEPopulationEstimator(
            post,
            likelihood="amortized",
            random_effects=["theta0"],
            variance_floor=1e-2,
            n_samples=50,
            n_starts=2,
            random_state=0,
        ).fit(X)
    assert list(pop.random_effects_.index) == ["theta0"]
    assert pop.covariance_.loc["theta1", "theta1"] == pytest.approx(1e-2)


def test_reproducible(population):
    _, X, post = population
    kw = dict(n_samples=50, n_starts=2, likelihood="amortized")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        a = NLMEPopulationEstimator(post, random_state=5, **kw).fit(X)
        b = NLMEPopulationEstimator(post, random_state=5, **kw).fit(X)
        c = NLMEPopulationEstimator(post, random_state=6, **kw).fit(X)
        d = NLMEPopulationEstimator(post, random_state=5, n_jobs=2, **kw).fit(X)
    np.testing.assert_array_equal(a.x_, b.x_)
    assert not np.array_equal(a.x_, c.x_)
    # threads: same draws and start points, kernels on one thread each; equal up
    # to the optimiser's tolerance if the summation order ever differs
    np.testing.assert_allclose(a.x_, d.x_, atol=1e-6)


def test_objective_pickles(fitted):
    obj = pickle.loads(pickle.dumps(fitted.objective_))
    assert isinstance(obj, PopulationObjective)
    assert obj(fitted.x_) == fitted.objective_(fitted.x_)


class _Flaky(pypesto.optimize.ScipyOptimizer):
    """Raises for starts whose first coordinate is above 1 (a crashing solver)."""

    def minimize(self, problem, x0, id, history_options=None, optimize_options=None):
        if x0[0] > 1.0:
            raise FloatingPointError("solver blew up")
        return super().minimize(problem, x0, id, history_options, optimize_options)


def test_failed_starts_counted_not_fatal(population):
    _, X, post = population
    pop = NLMEPopulationEstimator(
        post,
        likelihood="amortized",
        optimizer=_Flaky(method="L-BFGS-B"),
        n_samples=50,
        n_starts=6,
        random_state=0,
    )
    with pytest.warns(RuntimeWarning, match=r"of 6 optimiser starts failed"):
        pop.fit(X)
    x0 = np.array([r.x0[0] for r in pop.optimize_result_.optimize_result.list])
    assert pop.n_starts_failed_ == np.sum(x0 > 1.0) > 0
    assert np.all(np.isfinite(pop.x_))


def test_low_ess_individuals_fall_back_to_their_laplace_proposal(population):
    """A posterior 50x too narrow: its proposals collapse; the Laplace ones replace them.

    The linear-Gaussian posterior is exactly Gaussian, so its Laplace approximation
    is exact and the importance weights of the fallback individuals are those of a
    t proposal around the true conditional: an ESS of at least half the draws.
    """
    model, X, _ = population
    narrow = ExactGaussianPosterior(model, cov_scale=0.02).fit()
    pop = NLMEPopulationEstimator(
        narrow, likelihood="importance", n_samples=20, n_starts=1, random_state=0
    )
    pop.fit(X)
    assert len(pop.fallback_) > 0
    assert pop.fallback_["reason"].str.contains("effective sample size").all()
    assert pop.fallback_["converged"].all()
    K = pop.result_.ess.size and pop.objective_.K * 10
    assert (pop.ess_[pop.fallback_.index] > 0.5 * K).all()
    # 80 individuals: the re-scoring budget (2**22 draws) caps the total SE near
    # 0.03-0.05; every individual's term is within its own target
    assert (pop.mc_se_ <= 0.1).all()
    assert pop.loglik_mc_se_ == pytest.approx(np.sqrt(np.sum(pop.mc_se_**2)))


class _NoLikelihood(LinearGaussian):
    _log_likelihood = Model._log_likelihood


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"n_samples": 0}, "n_samples must be an integer >= 1"),
        ({"n_starts": 1.5}, "n_starts must be an integer >= 1"),
        ({"covariance": "full"}, "covariance must be 'diag', 'cholesky'"),
        ({"likelihood": "exact"}, "likelihood must be one of"),
        ({"covariates": {"AGE": ["theta0"]}}, "covariate 'AGE' is not a column of X"),
        ({"covariates": {"WT": ["theta9"]}}, "theta9"),
        ({"random_effects": ["theta0", "ka"]}, "ka"),
        ({"fixed": {"theta0": 1e6}}, "outside its bounds"),
        ({"fixed": {"log_var(nope)": 0.0}}, "nope"),
    ],
)
def test_bad_parameters(population, params, match):
    _, X, post = population
    with pytest.raises(ValueError, match=match):
        NLMEPopulationEstimator(post, **{"n_starts": 1, "n_samples": 5, **params}).fit(X)


def test_bad_covariates(population):
    _, X, post = population
    bad = X.copy()
    bad.loc[bad.index[3], "WT"] = np.nan
    with pytest.raises(ValueError, match=r"covariate 'WT' of individual 4 is nan"):
        NLMEPopulationEstimator(
            post, likelihood="amortized", covariates={"WT": ["theta0"]}, n_starts=1
        ).fit(bad)
    bad = X.assign(SEX=np.where(np.arange(len(X)) % 2, "F", "M"))
    with pytest.raises(ValueError, match="OneHotEncoder"):
        NLMEPopulationEstimator(
            post, likelihood="amortized", covariates={"SEX": ["theta0"]}, n_starts=1
        ).fit(bad)
    assert X["WT"].notna().all()  # inputs untouched


def test_wrong_posterior(population):
    model, X, _ = population
    other = ExactGaussianPosterior(LinearGaussian(n_params=3, sigma=0.3)).fit()
    other.model = model  # claims 2 parameters, draws 3
    with pytest.raises(ValueError, match="trained for another model"):
        NLMEPopulationEstimator(other, likelihood="amortized", n_starts=1, n_samples=5).fit(X)
    with pytest.raises(ValueError, match="needs a model with an observation likelihood"):
        post = ExactGaussianPosterior(_NoLikelihood(n_params=2)).fit()
        NLMEPopulationEstimator(post, likelihood="importance").fit(X)
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        NLMEPopulationEstimator(ExactGaussianPosterior(model), likelihood="amortized").fit(X)
    with pytest.raises(TypeError, match="individuals DataFrame"):
        NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), likelihood="amortized").fit(
            np.ones((3, 2))
        )


def test_summary_counts_rows(fitted):
    table = fitted.summary(confidence=0.9)
    assert list(table["kind"]) == ["fixed effect"] * 2 + ["SD"] * 2 + ["variance"] * 2
    assert (table["se"] > 0).all() and (table["rse_percent"] > 0).all()
    assert isinstance(table, pd.DataFrame)


def test_process_backend_same_result(population):
    # Process backends (loky here; Dask and Ray the same way) pickle the objective
    # and the optimiser to workers; the starts and the result must not change.
    # Slow-ish (workers import sknlme and pypesto), so one tiny fit only.
    from joblib import parallel_config

    _, X, post = population
    kw = dict(n_samples=20, n_starts=2, random_state=1, likelihood="amortized")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        a = NLMEPopulationEstimator(post, **kw).fit(X)
        with parallel_config(backend="loky", n_jobs=2):
            b = NLMEPopulationEstimator(post, **kw).fit(X)
    np.testing.assert_allclose(a.x_, b.x_, atol=1e-6)
    assert b.n_starts_failed_ == 0
