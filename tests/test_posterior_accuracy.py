"""AmortizedPosterior against the exact posterior of a linear-Gaussian model."""

import numpy as np
import pytest

from sknlme.models import LinearGaussian
from sknlme.posterior import AmortizedPosterior


@pytest.fixture(scope="module")
def trained():
    model = LinearGaussian(times=[0.0, 0.25, 0.5, 0.75, 1.0], n_params=2, sigma=0.5)
    post = AmortizedPosterior(
        model,
        hidden_units=(32, 32),
        flow_depth=3,
        n_simulations=12_000,
        epochs=15,
        batch_size=64,
        learning_rate=1e-3,
        random_state=0,
    ).fit()
    return model, post


def test_matches_exact_posterior(trained):
    model, post = trained
    X, _ = model.simulate(200, random_state=1)
    draws = post.sample(X, 1000, random_state=0)
    mu, cov = model.exact_posterior(X)
    sd = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
    err = np.abs(draws.mean(1) - mu) / sd
    ratio = draws.std(1) / sd
    # Tolerances. Monte Carlo error of a mean of 1000 draws is 1/sqrt(1000) = 0.03 SD;
    # the rest is network error after ~2,500 Adam steps, measured at a median of
    # 0.12-0.16 posterior SD and SD ratios of 1.01-1.02 (seed 0). Bounds are ~2.5x
    # those errors; a network that ignored the data (returning the prior, SDs 2-3x
    # too wide, means several posterior SDs off) fails all of them.
    assert np.all(np.median(err, axis=0) < 0.35), np.median(err, axis=0)
    assert np.all(np.quantile(err, 0.9, axis=0) < 0.8), np.quantile(err, 0.9, axis=0)
    assert np.all(np.abs(np.median(ratio, axis=0) - 1) < 0.2), np.median(ratio, axis=0)
    # correlation of the two coefficients (exact: strongly negative)
    exact_corr = cov[:, 0, 1] / (sd[:, 0] * sd[:, 1])
    npe_corr = np.array([np.corrcoef(d.T)[0, 1] for d in draws])
    assert np.median(np.abs(npe_corr - exact_corr)) < 0.15


def test_log_prob_matches_exact_density(trained):
    model, post = trained
    X, _ = model.simulate(50, random_state=2)
    mu, cov = model.exact_posterior(X)
    phi = mu[:, None, :] + np.einsum(
        "nde,nke->nkd", np.linalg.cholesky(cov), np.random.default_rng(0).normal(size=(50, 20, 2))
    )
    diff = phi - mu[:, None, :]
    exact = -0.5 * np.einsum("nkd,nde,nke->nk", diff, np.linalg.inv(cov), diff)
    exact -= 0.5 * np.log(np.linalg.det(2 * np.pi * cov))[:, None]
    # the log density of draws inside the posterior bulk: errors of ~0.15 SD in the
    # mean and a few % in the SD change it by ~0.1-0.3 nats; bound the median at 0.5
    assert np.median(np.abs(post.log_prob(X, phi) - exact)) < 0.5


def test_calibrated_on_simulations(trained):
    model, post = trained
    X, phi = model.simulate(400, random_state=3)
    table = post.diagnose(X, phi, n_samples=200)
    # 90 % coverage over 400 individuals: binomial SD 0.015; +-3 SD plus network error
    assert table["coverage_0.9"].between(0.82, 0.96).all(), table
    # ECDF error: KS distance of 400 uniform ranks has 99 % quantile 1.63/sqrt(400) = 0.08
    assert (table["ecdf_error"] < 0.1).all(), table
