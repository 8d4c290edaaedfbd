"""ImportanceObjective against closed-form marginal likelihoods (LinearGaussian).

For ``LinearGaussian`` the likelihood is Gaussian in ``phi``, so the proposal's
likelihood approximation is exact up to the Monte-Carlo moments of the draws;
the t proposal (inflated) then has bounded weights and the estimate is close
to ``marginal_loglik`` for any population parameters.
"""

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sknlme.models import LinearGaussian
from sknlme.population import ImportanceObjective, PopulationObjective, amortized_offsets
from sknlme.population import _importance as imp
from sknlme.population._conditional import conditional_mode_proposals
from sknlme.population._importance import likelihood_gaussians
from sknlme.population._rescoring import mc_standard_errors
from sknlme.posterior import ExactGaussianPosterior


def _setup(n=15, d=2, seed=0, random_effects=None, covariance="diag", covariate_effects=None):
    """LinearGaussian draws and their amortized objective; with ``covariate_effects`` a
    covariate column ``c`` (evenly spaced in [-1, 1]) is added to X and used."""
    model = LinearGaussian(n_params=d, sigma=0.3)
    X, _ = model.simulate(n, random_state=seed)
    if covariate_effects:
        X = X.assign(c=np.linspace(-1.0, 1.0, len(X)))
    post = ExactGaussianPosterior(model).fit()
    draws = post.sample(X, 200, random_state=seed)
    offsets = amortized_offsets(draws, model.prior_mean, model.prior_cov)
    base = PopulationObjective(
        draws,
        offsets,
        list(model.param_names),
        random_effects=random_effects,
        covariance=covariance,
        covariates=X[["c"]] if covariate_effects else None,
        covariate_effects=covariate_effects,
    )
    return model, X, base


def test_likelihood_gaussians_recovers_linear_gaussian_likelihood():
    model, X, base = _setup(n=4, d=2)
    lam, eta = likelihood_gaussians(base.samples, model.prior_mean, model.prior_cov)
    # exact likelihood precision A^T A / sigma^2 of each individual
    A, _, mask = model._observed(X)
    exact = np.einsum("ntd,nt,nte->nde", A, mask, A) / model.sigma**2
    # 200 draws: moments have relative error ~ sqrt(2/200) = 0.1; 4 such errors bound it
    assert np.allclose(lam, exact, rtol=0.4)


@settings(max_examples=15, deadline=None)
@given(
    beta=st.lists(st.floats(-1.0, 1.0), min_size=2, max_size=2),
    log_sd=st.lists(st.floats(-1.5, 0.5), min_size=2, max_size=2),
    chol=st.booleans(),
)
def test_matches_closed_form_marginal_likelihood(beta, log_sd, chol):
    model, X, base = _setup(covariance="cholesky" if chol else "diag")
    cov = np.diag(np.exp(2 * np.asarray(log_sd)))
    if chol:
        cov[0, 1] = cov[1, 0] = 0.5 * np.sqrt(cov[0, 0] * cov[1, 1])
    obj = ImportanceObjective(base, model, X, 400, random_state=1)
    x = base.pack(beta=beta, cov=cov)
    exact = model.marginal_loglik(X, np.asarray(beta), cov)
    est = obj.individual_loglik(x)
    # weights are bounded (Gaussian target, inflated t proposal): ESS >= 100 of 400
    # draws, so each log-estimate has sd <= 0.1; 5 sds per individual.
    assert np.all(np.abs(est - exact) < 0.5)
    assert obj(x) == pytest.approx(-exact.sum(), abs=0.5 * np.sqrt(len(X)))


def test_parameters_without_random_effect_are_exact():
    """A parameter without random effect is held at its mean: Psi entry exactly 0."""
    model, X, base = _setup(random_effects=["theta0"])
    obj = ImportanceObjective(base, model, X, 400, random_state=2)
    cov = np.diag([0.3, base.layout.variance_floor[1]])
    x = base.pack(beta=[0.2, -0.4], cov=cov)
    exact = model.marginal_loglik(X, np.array([0.2, -0.4]), np.diag([0.3, 0.0]))
    assert np.allclose(obj.individual_loglik(x), exact, atol=0.5)
    phi, _ = obj.draws(x)
    assert np.all(phi[:, :, 1] == -0.4)


def test_deterministic_and_fresh_draws():
    model, X, base = _setup()
    obj = ImportanceObjective(base, model, X, 100, random_state=3)
    x = base.pack(beta=[0.1, 0.1], cov=np.eye(2) * 0.5)
    assert obj(x) == obj(x)  # cached
    assert obj.with_draws(100, random_state=3)(x) == obj(x)  # same seed, same draws
    other = obj.with_draws(1000, random_state=4)
    assert other.K == 1000 and other(x) != obj(x)
    assert other(x) == pytest.approx(obj(x), abs=2.0)
    g = obj.gradient(x)
    assert g.shape == (base.n_x,) and np.all(np.isfinite(g))
    # central differences of a smooth (common-random-number) function: steps 1e-5 and
    # 1e-3 agree to O(h^2) relative
    coarse = ImportanceObjective(base, model, X, 100, random_state=3, rel_step=1e-3)
    assert np.allclose(coarse.gradient(x), g, rtol=1e-3, atol=1e-3)


def test_nan_likelihood_names_individual():
    model, X, base = _setup(n=3)

    class Broken(LinearGaussian):
        def _log_likelihood(self, phi, padded, covariates):
            out = super()._log_likelihood(phi, padded, covariates)
            out[1] = np.nan
            return out

    broken = Broken(n_params=2, sigma=0.3)
    obj = ImportanceObjective(base, broken, X, 50, random_state=0)
    ident = X.index.tolist()[1]
    with pytest.raises(FloatingPointError, match=f"individual {ident!r}"):
        obj.draws(base.pack(beta=[0.0, 0.0], cov=np.eye(2)))


def _loop_gradient(obj, x):
    """Central differences by one ``__call__`` per point (the unbatched reference)."""
    g = np.empty(x.size)
    for j in range(x.size):
        h = obj.rel_step * max(1.0, abs(x[j]))
        e = np.zeros_like(x)
        e[j] = h
        g[j] = (obj(x + e) - obj(x - e)) / (2 * h)
    return g


def _theophylline_objective(covariance):
    """Theophylline with the one-compartment model, random effects on three of four
    parameters (``log_sigma`` has none), a weight effect, and synthetic posterior draws
    (no network needed)."""
    from sknlme.datasets import load_theophylline
    from sknlme.models import OneCompartmentOral

    model = OneCompartmentOral()
    X = load_theophylline()
    rng = np.random.default_rng(0)
    centres = np.asarray(model.prior_mean) + 0.3 * rng.standard_normal((len(X), 1, 4))
    draws = centres + 0.15 * rng.standard_normal((len(X), 200, 4))
    offsets = amortized_offsets(draws, model.prior_mean, model.prior_cov)
    wt = X[["WT"]] - X[["WT"]].mean()
    base = PopulationObjective(
        draws,
        offsets,
        list(model.param_names),
        covariance=covariance,
        random_effects=["log_ke", "log_ka", "log_Cl"],
        covariates=wt,
        covariate_effects={"WT": ["log_Cl"]},
    )
    x = base.pack(
        beta=[-2.45, 0.47, -3.23, -0.3],
        B=[[0.0, 0.0, 0.01, 0.0]],
        cov=np.array(
            [[0.02, 0.01, 0.0, 0], [0.01, 0.4, 0.02, 0], [0.0, 0.02, 0.05, 0], [0, 0, 0, 1.0]]
        ),
    )
    return ImportanceObjective(base, model, X, 100, random_state=0), x


def _linear_gaussian_objective(covariance):
    """LinearGaussian, three parameters, one without random effect, one covariate."""
    model, X, base = _setup(
        n=15,
        d=3,
        random_effects=["theta0", "theta2"],
        covariance=covariance,
        covariate_effects={"c": ["theta0", "theta1"]},
    )
    cov = np.array([[0.5, 0.0, 0.1], [0.0, 1.0, 0.0], [0.1, 0.0, 0.3]])
    x = base.pack(beta=[0.2, -0.3, 0.1], B=[[0.3, -0.2, 0.0]], cov=cov)
    return ImportanceObjective(base, model, X, 100, random_state=1), x


@pytest.mark.parametrize("covariance", ["diag", "cholesky"])
@pytest.mark.parametrize("make", [_linear_gaussian_objective, _theophylline_objective])
def test_batched_gradient_matches_loop_of_calls(make, covariance, monkeypatch):
    obj, x0 = make(covariance)
    rng = np.random.default_rng(5)
    for x in (x0, x0 + 0.05 * rng.standard_normal(x0.size)):
        ref = _loop_gradient(obj.with_draws(obj.K, random_state=7), x)
        obj = obj.with_draws(obj.K, random_state=7)  # same draws, empty cache
        f, g = obj.value_and_gradient(x)
        assert f == obj.with_draws(obj.K, random_state=7)(x)
        # one ulp of f ~ 200 is 3e-14, i.e. 3e-9 in a difference quotient with h = 1e-5;
        # batching changes no operation on any draw, so the two agree far closer.
        np.testing.assert_allclose(g, ref, rtol=1e-10, atol=1e-10)
        np.testing.assert_array_equal(obj.gradient(x), g)
        # several batches when the draws exceed the batch size
        monkeypatch.setattr(imp, "_BATCH_DRAWS", 3 * obj.n * obj.K)
        np.testing.assert_allclose(obj.gradient(x), g, rtol=1e-10, atol=1e-10)
        monkeypatch.undo()
    bad = x0.copy()
    bad[0] = np.nan
    assert np.all(np.isnan(obj.gradient(bad)))
    assert np.isnan(obj.value_and_gradient(bad)[0])


def test_batched_gradient_names_nan_individual():
    model, X, base = _setup(n=3)

    class Broken(LinearGaussian):
        def _log_likelihood(self, phi, padded, covariates):
            out = super()._log_likelihood(phi, padded, covariates)
            out[2, -1] = np.nan  # the last draw of the last point of a batch
            return out

    obj = ImportanceObjective(base, Broken(n_params=2, sigma=0.3), X, 50, random_state=0)
    ident = X.index.tolist()[2]
    with pytest.raises(FloatingPointError, match=f"individual {ident!r}"):
        obj.value_and_gradient(base.pack(beta=[0.0, 0.0], cov=np.eye(2)))


def test_loglik_bias_correction_removes_the_jensen_bias_of_a_summed_log_mean():
    """Summed over many individuals, ``log mean(w)`` falls short of the exact marginal
    log-likelihood by about half the summed variances, several times its own MC SE;
    less :func:`loglik_bias` it is within 3 MC SEs of the exact value.

    6,000 individuals, 30 draws each (per-term SE ~ 0.18, where the second-order delta
    method holds): the expected shortfall is ~ SE**2 / 2 ~ 95 with SE ~ 14, so the
    uncorrected sum is > 3 SEs short; what the correction leaves is of order 1/K**2 per
    term (~ 6,000 x 1e-3), below the 3 SEs of the tolerance.
    """
    from sknlme.population._rescoring import loglik_bias, mc_standard_errors

    model = LinearGaussian(n_params=2, sigma=0.3)
    X, _ = model.simulate(6000, random_state=3)
    draws = ExactGaussianPosterior(model).fit().sample(X, 50, random_state=3)
    base = PopulationObjective(draws, np.zeros(draws.shape[:2]), list(model.param_names))
    obj = ImportanceObjective(base, model, X, 30, random_state=4)
    x = obj.pack(beta=np.zeros(2), cov=np.eye(2))
    exact = float(model.marginal_loglik(X, np.zeros(2), np.eye(2)).sum())
    w = obj.weights(x)
    se = float(np.sqrt(np.sum(mc_standard_errors(w) ** 2)))
    raw = -float(obj(x))
    assert exact - raw > 3 * se  # the bias is real: the test could fail without the correction
    assert abs(raw - loglik_bias(w, obj.n_defensive) - exact) < 3 * se


def test_conditional_mode_proposals_follow_the_parameters_without_random_effect():
    """Rich individuals; theta1 (no random effect) moved 10 posterior SDs after the step.

    Every individual's posterior couples theta0 and theta1 (correlation -0.85: times
    in [0, 1] are not centred), so the conditional of theta0 given theta1 moves with
    theta1. The conditional-mode proposals are taken at ``x0`` (the network's draws
    far too narrow, so every ESS is low there); the likelihood is Gaussian, so their
    linear dependence on theta1 through its curvature is exact and at ``x1`` they
    are the conditional itself: a Gaussian target under the t proposal inflated
    1.5x has an ESS of about 0.6 of the draws, and the median must stay above a
    quarter of them. Held where they were taken, the median falls below 5 %.
    """
    model = LinearGaussian(times=np.linspace(0.0, 1.0, 40), n_params=2, sigma=0.05)
    X, _ = model.simulate(10, random_state=3)
    study = model.prepare(X)
    draws = ExactGaussianPosterior(model, cov_scale=1e-3).fit().sample(X, 100, random_state=3)
    base = PopulationObjective(
        draws, np.zeros((10, 100)), list(model.param_names), random_effects=["theta0"]
    )
    obj = ImportanceObjective(base, model, study, 2000, random_state=4)
    theta1 = float(np.median(draws[:, :, 1]))
    theta1_sd = np.sqrt(model.exact_posterior(study)[1][:, 1, 1].mean())
    cov = np.diag([0.3, base.layout.variance_floor[1]])
    x0 = base.pack(beta=[0.0, theta1], cov=cov)
    new, rows = conditional_mode_proposals(obj, model, study, x0, 0)
    assert rows.size == 10
    beta = np.array([0.0, theta1 + 10 * theta1_sd])
    x1 = base.pack(beta=beta, cov=cov)
    w = new.weights(x1)
    assert np.median(1.0 / np.sum(w**2, axis=1)) > 0.25 * new.K
    exact = model.marginal_loglik(X, beta, np.diag([0.3, 0.0]))
    # each log-mean within 5 of its MC SEs (from its weights)
    assert np.all(np.abs(new.individual_loglik(x1) - exact) < 5 * mc_standard_errors(w))
    held = copy.copy(new)  # the same proposals, not following theta1
    held._eta = new._eta - np.einsum("nrf,nf->nr", new._lam_rf, np.full((10, 1), theta1))
    held._lam_rf = np.zeros_like(new._lam_rf)
    held._cache = held._draws_cache = (None, None)
    np.testing.assert_allclose(held.weights(x0), new.weights(x0), atol=1e-8)
    assert np.median(1.0 / np.sum(held.weights(x1) ** 2, axis=1)) < 0.05 * new.K


def test_a_polish_still_moving_at_the_cap_warns(monkeypatch):
    """The same rich study with the network's draws far too narrow, fitted by default.

    Its first polish moves theta1 by about 0.08 from where the conditional-mode
    proposals were taken, and some individuals' ESS is low at its end: the default
    repeats the polish there (it then moves by less than 0.001) and says nothing; with
    a single polish allowed the fit must say that it stopped while still moving, and
    name individuals whose proposals are stale.
    """
    import warnings

    from sknlme.population import NLMEPopulationEstimator, _refine

    model = LinearGaussian(times=np.linspace(0.0, 1.0, 40), n_params=2, sigma=0.05)
    X, _ = model.simulate(10, random_state=3)
    post = ExactGaussianPosterior(model, cov_scale=1e-3).fit()

    def fit():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            NLMEPopulationEstimator(post, random_effects=["theta0"], random_state=1).fit(X)
        return [str(w.message) for w in caught if "still moving" in str(w.message)]

    assert fit() == []
    monkeypatch.setattr(_refine, "CONDITIONAL_ROUNDS", 1)
    (message,) = fit()
    assert "after 1 polish with" in message and "individuals (" in message
