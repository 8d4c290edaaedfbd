"""LinearGaussian: exact posterior, marginal likelihood and likelihood checks."""

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from sknlme.data import IndividualRecords, make_individuals
from sknlme.models import LinearGaussian

# Two-parameter problems are checked by brute force on a grid: the integrands are
# Gaussians with SDs in [0.15, 1] centred within 1 of the origin, so [-9, 9]^2
# leaves > 8 SD on each side (truncated mass < 1e-15) and a step of 0.015 (< SD/10)
# makes the Riemann sum spectrally accurate (error ~ exp(-2 pi^2 (SD/step)^2));
# we assert 1e-6 relative agreement.
GRID = np.linspace(-9.0, 9.0, 1201)


def _ragged_data():
    model = LinearGaussian(times=[0.0, 0.25, 0.5, 0.75, 1.0], n_params=2, sigma=0.5)
    X, phi = model.simulate(3, random_state=1)
    recs = list(X["records"])
    vals = recs[1].values.copy()
    vals[[1, 3]] = np.nan  # missing values inside a record
    recs[1] = IndividualRecords(recs[1].times, vals)
    recs[2] = IndividualRecords(recs[2].times[:2], recs[2].values[:2])  # shorter record
    return model, make_individuals(recs), phi.to_numpy()


def _grid_logpost_terms(model, X, i, mean, cov):
    g0, g1 = np.meshgrid(GRID, GRID, indexing="ij")
    pts = np.stack([g0.ravel(), g1.ravel()], -1)
    loglik = model.log_likelihood(np.broadcast_to(pts, (len(X),) + pts.shape), X)[i]
    logprior = stats.multivariate_normal(mean, cov).logpdf(pts)
    return pts, loglik + logprior


def test_exact_posterior_matches_grid():
    model, X, _ = _ragged_data()
    means, covs = model.exact_posterior(X)
    for i in range(len(X)):
        pts, logp = _grid_logpost_terms(model, X, i, model.prior_mean, model.prior_cov)
        w = np.exp(logp - logsumexp(logp))
        m = w @ pts
        c = (pts - m).T @ ((pts - m) * w[:, None])
        np.testing.assert_allclose(means[i], m, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(covs[i], c, rtol=1e-5, atol=1e-7)


def test_marginal_loglik_matches_grid():
    model, X, _ = _ragged_data()
    mean = np.array([0.3, -0.2])
    cov = np.array([[0.5, 0.1], [0.1, 0.3]])
    got = model.marginal_loglik(X, mean, cov)
    step = GRID[1] - GRID[0]
    for i in range(len(X)):
        _, logp = _grid_logpost_terms(model, X, i, mean, cov)
        ref = logsumexp(logp) + 2 * np.log(step)
        assert got[i] == pytest.approx(ref, rel=1e-6, abs=1e-6)
    # per-individual mean/cov broadcast gives the same numbers
    got_b = model.marginal_loglik(X, np.tile(mean, (3, 1)), np.tile(cov, (3, 1, 1)))
    np.testing.assert_allclose(got_b, got)


def test_marginal_loglik_equals_evidence_identity():
    # log p(y) = log p(y|phi) + log p0(phi) - log p(phi|y) for any phi
    model, X, phi = _ragged_data()
    means, covs = model.exact_posterior(X)
    evid = model.marginal_loglik(X, model.prior_mean, model.prior_cov)
    ll = model.log_likelihood(phi[:, None, :], X)[:, 0]
    for i in range(len(X)):
        lpost = stats.multivariate_normal(means[i], covs[i]).logpdf(phi[i])
        assert evid[i] == pytest.approx(ll[i] + model.prior_logpdf(phi[i]) - lpost, abs=1e-9)


def test_log_likelihood_matches_scipy():
    model, X, _ = _ragged_data()
    rng = np.random.default_rng(0)
    phi = rng.normal(size=(3, 4, 2))
    got = model.log_likelihood(phi, X)
    assert got.shape == (3, 4)
    for i, rec in enumerate(X["records"]):
        obs = ~np.isnan(rec.values[:, 0])
        A = model.design_matrix(rec.times[obs])
        for k in range(4):
            ref = stats.norm(A @ phi[i, k], model.sigma).logpdf(rec.values[obs, 0]).sum()
            assert got[i, k] == pytest.approx(ref, rel=1e-12)


def test_simulation_shapes_reproducible_and_noise_level():
    model = LinearGaussian(times=np.linspace(0, 1, 4), n_params=3, sigma=0.3)
    X1, phi1 = model.simulate(2000, random_state=5)
    X2, phi2 = model.simulate(2000, random_state=5)
    X3, _ = model.simulate(2000, random_state=6)
    y1 = np.stack([r.values[:, 0] for r in X1["records"]])
    y2 = np.stack([r.values[:, 0] for r in X2["records"]])
    y3 = np.stack([r.values[:, 0] for r in X3["records"]])
    assert y1.shape == (2000, 4) and list(phi1.columns) == ["theta0", "theta1", "theta2"]
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(phi1.to_numpy(), phi2.to_numpy())
    assert not np.allclose(y1, y3)
    resid = y1 - phi1.to_numpy() @ model.design_matrix(model.times).T
    # 8000 residuals: SE of the sample SD ~ sigma / sqrt(2 * 8000) = 0.0024; allow 5 SE
    assert abs(resid.std() - 0.3) < 5 * 0.3 / np.sqrt(2 * 8000)


def test_bad_arguments():
    with pytest.raises(ValueError, match="sigma"):
        LinearGaussian(sigma=0)
    with pytest.raises(ValueError, match="times"):
        LinearGaussian(times=[1.0, 0.5])
    with pytest.raises(ValueError, match="n_params"):
        LinearGaussian(n_params=0)
