"""Training priors: normal and uniform (box), through sampling, the amortized
objective, the importance likelihood and saved posteriors.

The posterior of ``LinearGaussian`` under a uniform prior is its (Gaussian)
likelihood truncated to the box; exact draws come by rejection, so the prior
handling is tested apart from any network's error.
"""

import warnings

import numpy as np
import pytest
from scipy import optimize, stats

from sknlme.models import LinearGaussian, NormalPrior, UniformPrior, prior_from_dict
from sknlme.population import ImportanceObjective, PopulationObjective, amortized_offsets
from sknlme.population._fallback import sample_with_fallback
from sknlme.population._proposal import likelihood_gaussians
from sknlme.posterior import ExactGaussianPosterior, LaplacePosterior

BOX = (np.array([-3.0, -2.0]), np.array([3.0, 4.0]))


def _uniform_model(sigma=0.3):
    return LinearGaussian(n_params=2, sigma=sigma).with_prior(UniformPrior(*BOX))


def _likelihood_gaussian(model, X):
    """Mean (n, d) and covariance (n, d, d) of each individual's Gaussian likelihood."""
    A, y, mask = model._observed(X)
    prec = np.einsum("ntd,nt,nte->nde", A, mask, A) / model.sigma**2
    cov = np.linalg.inv(prec)
    mean = np.einsum("nde,nte,nt->nd", cov, A, y * mask) / model.sigma**2
    return mean, cov


def _box_posterior_draws(model, X, K, seed):
    """Exact posterior draws under the box prior: likelihood draws kept inside the box."""
    mean, cov = _likelihood_gaussian(model, X)
    rng = np.random.default_rng(seed)
    out = np.empty((len(X), K, model.n_params))
    for i in range(len(X)):
        kept = np.empty((0, model.n_params))
        while len(kept) < K:
            z = rng.multivariate_normal(mean[i], cov[i], size=4 * K)
            kept = np.vstack([kept, z[model.prior.contains(z)]])
        out[i] = kept[:K]
    return out


def test_uniform_prior_sampling_and_density():
    prior = UniformPrior(*BOX)
    phi = prior.sample(20_000, random_state=0)
    assert np.all(prior.contains(phi))
    # moments of U(a, b): 20,000 draws give SE (b - a) / sqrt(12 * 20,000) < 0.013 on the
    # mean; 5 SEs
    assert np.allclose(phi.mean(0), prior.mean, atol=0.07)
    assert np.allclose(np.cov(phi.T), prior.cov, atol=0.1)
    ks = stats.kstest(phi[:, 1], stats.uniform(-2.0, 6.0).cdf)
    assert ks.pvalue > 1e-3
    assert prior.log_density([0.0, 0.0]) == pytest.approx(-np.log(36.0))
    assert prior.log_density([3.5, 0.0]) == -np.inf
    assert np.array_equal(prior.sample(3, random_state=1), prior.sample(3, random_state=1))
    with pytest.raises(ValueError, match=r"parameter 1 has bounds low=2.0, high=1.0"):
        UniformPrior([0.0, 2.0], [1.0, 1.0])
    assert isinstance(prior_from_dict(NormalPrior([0.0], [1.0]).to_dict()), NormalPrior)


def test_with_prior_keeps_the_model_and_sets_moments():
    base = LinearGaussian(n_params=2)
    model = _uniform_model(0.5)
    assert base.prior.kind == "normal" and model.prior.kind == "uniform"
    assert np.allclose(model.prior_mean, [0.0, 1.0]) and np.allclose(model.prior_std**2, [3, 3])
    X, phi = model.simulate(50, random_state=0)
    assert np.all(model.prior.contains(phi.to_numpy()))
    assert np.isfinite(model.prior_logpdf(phi.to_numpy())).all()
    # the normal model is untouched; a normal prior round-trips to no stored prior
    assert base.prior.kind == "normal" and np.allclose(base.prior_cov, np.eye(2))
    back = model.with_prior(NormalPrior([0.0, 0.0], [1.0, 1.0]))
    assert back.prior.kind == "normal" and np.allclose(back.prior_cov, np.eye(2))
    with pytest.raises(ValueError, match="over 2 parameters"):
        base.with_prior(UniformPrior([0.0], [1.0]))
    with pytest.raises(ValueError, match="normal training prior"):
        ExactGaussianPosterior(model).fit()
    with pytest.raises(ValueError, match="normal training prior"):
        LaplacePosterior(model).fit()


def test_offsets_are_minus_log_density_and_zero_weight_outside():
    prior = UniformPrior(*BOX)
    draws = np.array([[[0.0, 0.0], [3.5, 0.0], [-1.0, 3.9]]], dtype=np.float32)
    c = amortized_offsets(draws, prior=prior)
    assert c[0, 0] == c[0, 2] == pytest.approx(np.log(36.0)) and c[0, 1] == -np.inf
    normal = NormalPrior([0.0, 1.0], [1.0, 4.0])
    assert np.array_equal(
        amortized_offsets(draws, prior=normal), amortized_offsets(draws, [0.0, 1.0], [1.0, 4.0])
    )
    # zero weight: the sum over the draws equals that over the two inside the box
    values = []
    for d in (draws, draws[:, [0, 2]]):
        obj = PopulationObjective(d, amortized_offsets(d, prior=prior), ["theta0", "theta1"])
        x = obj.pack(beta=[0.1, 0.2], cov=np.eye(2))
        values.append(obj(x) - np.log(d.shape[1]))  # the objective adds n log K
    assert np.isfinite(values[0]) and values[0] == pytest.approx(values[1])


def test_flat_prior_likelihood_gaussians_are_the_posterior():
    rng = np.random.default_rng(0)
    mean, cov = rng.normal(size=(3, 2)), np.stack([np.diag([0.2, 0.5])] * 3)
    draws = mean[:, None, :] + rng.normal(size=(3, 5000, 2)) * np.sqrt([0.2, 0.5])
    lam, eta = likelihood_gaussians(draws, [0.0, 0.0], None)
    # 5,000 draws: variances with relative SE sqrt(2 / 5000) = 0.02; 5 SEs
    assert np.allclose(lam, np.linalg.inv(cov), rtol=0.1, atol=0.1)
    assert np.allclose(np.linalg.solve(lam, eta[..., None])[..., 0], mean, atol=0.1)


def test_importance_likelihood_under_a_box_prior_matches_closed_form():
    model = _uniform_model()
    X, _ = model.simulate(12, random_state=0)
    draws = _box_posterior_draws(model, X, 200, seed=1)
    base = PopulationObjective(
        draws, amortized_offsets(draws, prior=model.prior), ["theta0", "theta1"]
    )
    obj = ImportanceObjective(base, model, X, 400, random_state=1)
    # the proposal's likelihood Gaussians are the draws' moments, with no prior precision
    lam, _ = likelihood_gaussians(draws, model.prior_mean, None)
    assert np.allclose(obj._lam, lam)
    for beta, cov in (([0.0, 1.0], np.diag([0.5, 1.0])), ([1.0, 0.0], np.diag([0.2, 0.3]))):
        x = base.pack(beta=beta, cov=cov)
        exact = model.marginal_loglik(X, np.asarray(beta), cov)
        # Gaussian target, inflated t proposal: ESS >= 100 of 400 draws, each
        # log-estimate sd <= 0.1; 5 sds per individual (as for the normal prior)
        assert np.all(np.abs(obj.individual_loglik(x) - exact) < 0.5)


def _fit(objective):
    """Minimiser of a population objective and the SEs from its Hessian (central
    differences of the analytic gradient)."""
    x0 = objective.pack(beta=[0.0, 0.0], cov=np.eye(2))
    res = optimize.minimize(objective.value_and_gradient, x0, jac=True, method="BFGS")
    h = 1e-4
    H = np.array([
        (objective.gradient(res.x + h * e) - objective.gradient(res.x - h * e)) / (2 * h)
        for e in np.eye(res.x.size)
    ])  # fmt: skip
    return res.x, np.sqrt(np.diag(np.linalg.inv(0.5 * (H + H.T))))


def test_amortized_estimates_agree_between_normal_and_box_priors():
    """The issue's comparison on exact posterior draws under each prior (no network
    error): both amortized objectives estimate the same marginal likelihood of one data
    set, so their minimisers differ by Monte-Carlo error only (300 draws per individual,
    far below the sampling SE ~ sd / sqrt(60)); required: within one SE."""
    box = _uniform_model()
    normal = LinearGaussian(n_params=2, sigma=0.3, prior_cov=[4.0, 4.0])
    rng = np.random.default_rng(3)
    phi = np.array([0.3, 1.0]) + rng.normal(size=(60, 2)) * [0.5, 0.4]
    X, _ = box.simulate(phi=phi, random_state=4)
    names = list(box.param_names)
    draws = _box_posterior_draws(box, X, 300, seed=5)
    x_box, se_box = _fit(
        PopulationObjective(draws, amortized_offsets(draws, prior=box.prior), names)
    )
    draws = ExactGaussianPosterior(normal).fit().sample(X, 300, random_state=5)
    x_nrm, se_nrm = _fit(
        PopulationObjective(draws, amortized_offsets(draws, prior=normal.prior), names)
    )
    assert np.all(np.abs(x_box - x_nrm) < np.minimum(se_box, se_nrm))
    # and the box fit recovers the simulated population (3 SEs)
    truth = PopulationObjective(draws, np.zeros(draws.shape[:2]), names).pack(
        beta=[0.3, 1.0], cov=np.diag([0.25, 0.16])
    )
    assert np.all(np.abs(x_box - truth) < 3 * se_box)


def test_saved_posterior_records_the_prior(tmp_path):
    from sknlme.posterior import AmortizedPosterior

    model = _uniform_model()
    tiny = dict(hidden_units=(8,), flow_depth=1, summary_dim=4, batch_size=64, random_state=0)
    post = AmortizedPosterior(model, n_simulations=200, epochs=1, **tiny).fit()
    path = tmp_path / "box.zip"
    post.save(path)
    again = AmortizedPosterior.load(path)
    assert again.model.prior.kind == "uniform"
    assert np.allclose(again.model.prior.low, BOX[0]) and np.allclose(
        again.model.prior.high, BOX[1]
    )
    with pytest.raises(ValueError, match="does not match the saved parameters and prior"):
        AmortizedPosterior.load(path, model=LinearGaussian(n_params=2, sigma=0.3))
    X, _ = model.simulate(5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.array_equal(again.sample(X, 4, random_state=0), post.sample(X, 4, random_state=0))
    # a one-epoch flow leaks out of the box: those draws get zero weight and the
    # fraction is reported
    study = model.prepare(X)
    with pytest.warns(RuntimeWarning, match=r"% of the network's draws lie outside") as rec:
        samples, offsets, _ = sample_with_fallback(post, model, study, 200, 0, "warn")
    outside = ~model.prior.contains(samples)
    assert outside.any() and np.array_equal(np.isneginf(offsets), outside)
    assert f"{outside.mean():.2%}" in str(rec[0].message)


@pytest.mark.slow
def test_trained_normal_and_box_prior_networks_give_the_same_estimates():
    """The issue's comparison with trained networks (about 100 s on two loaded cores).
    Both fits estimate the same population on one data set; their difference is the
    two networks' errors plus Monte-Carlo error. Required: within one SE of the
    estimates (SE ~ sd / sqrt(100) = 0.05 for the means). Measured: means 0.282 /
    -0.246 (normal) and 0.284 / -0.266 (box), SEs 0.05 / 0.06."""
    from sklearn.frozen import FrozenEstimator

    from sknlme.population import NLMEPopulationEstimator
    from sknlme.posterior import AmortizedPosterior

    net = dict(hidden_units=(64,), flow_depth=3, summary_dim=8, batch_size=128, random_state=0)
    models = {
        "normal": LinearGaussian(n_params=2, sigma=0.3, prior_cov=[4.0, 4.0]),
        "box": LinearGaussian(n_params=2, sigma=0.3).with_prior(
            UniformPrior([-4.0, -4.0], [4.0, 4.0])
        ),
    }
    rng = np.random.default_rng(1)
    phi = np.array([0.3, -0.2]) + rng.standard_normal((100, 2)) * [0.5, 0.4]
    X, _ = models["normal"].simulate(phi=phi, random_state=2)
    fits = {}
    for name, model in models.items():
        post = AmortizedPosterior(model, n_simulations=8000, epochs=15, **net).fit()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # draws outside the box, ESS
            fits[name] = NLMEPopulationEstimator(
                FrozenEstimator(post), n_starts=3, likelihood="amortized", random_state=0
            ).fit(X)
    a, b = fits["normal"], fits["box"]
    se = np.minimum(a.standard_errors_, b.standard_errors_)
    x_a = np.r_[a.fixed_effects_, np.log(a.random_effects_**2)]
    x_b = np.r_[b.fixed_effects_, np.log(b.random_effects_**2)]
    assert np.all(np.abs(x_a - x_b) < se.to_numpy())


class _ShiftedPosterior:
    """Exact box-posterior draws, individual 0's moved out of the box."""

    def __init__(self, model):
        self.model = model

    def sample(self, X, n, random_state=None):
        draws = _box_posterior_draws(self.model, X, n, seed=0)
        draws[0] += 10.0
        return draws


def test_individual_without_a_draw_in_the_box_falls_back_or_raises():
    model = _uniform_model()
    X, _ = model.simulate(4, random_state=0)
    study = model.prepare(X)
    post = _ShiftedPosterior(model)
    with pytest.warns(RuntimeWarning, match="25.00% of the network's draws"):
        with pytest.raises(ValueError, match=r"no posterior draw of individual 1 lies in"):
            sample_with_fallback(post, model, study, 50, 0, "warn")
    with pytest.warns(RuntimeWarning, match="25.00% of the network's draws"):
        samples, offsets, fb = sample_with_fallback(post, model, study, 50, 0, "fallback")
    assert list(fb.rows) == [0] and "no draw in the prior's support" in fb.table["reason"].iloc[0]
    # the Laplace draws of individual 0 sit at its likelihood, inside the box again
    mean, _ = _likelihood_gaussian(model, X)
    assert np.allclose(samples[0].mean(0), mean[0], atol=0.3) and np.isfinite(offsets).all()
