"""Stepwise covariate search on a simulated study: finds the true covariate, rejects a null."""

import numpy as np
import pytest

from sknlme.models import LinearGaussian
from sknlme.population import NLMEPopulationEstimator, stepwise_covariates
from sknlme.posterior import ExactGaussianPosterior


def test_scm_finds_true_and_rejects_null():
    model = LinearGaussian(n_params=1, sigma=0.2)
    rng = np.random.default_rng(11)
    n = 40
    wt, age = rng.normal(size=n), rng.normal(size=n)
    # WT shifts theta0 by 0.4 SD-units (between-subject SD 0.3: LRT statistic
    # ~ n 0.4^2 / 0.3^2 >> chi2 critical); AGE has no effect
    phi = np.array([1.0]) + 0.3 * rng.standard_normal((n, 1))
    phi[:, 0] += 0.4 * wt
    X, _ = model.simulate(phi=phi, random_state=12)
    X.insert(0, "AGE", age)
    X.insert(0, "WT", wt)
    base = NLMEPopulationEstimator(
        ExactGaussianPosterior(model).fit(), n_samples=100, n_starts=1, random_state=0
    )
    out = stepwise_covariates(base, X, [("WT", "theta0"), ("AGE", "theta0")], n_jobs=1)
    # the null effect has p ~ U(0, 1): included at 5 % with probability 5 %
    # forward, then kept only if p < 0.01; this seed's study excludes it
    assert out["covariates"] == {"WT": ["theta0"]}
    hist = out["history"]
    first = hist[hist["step"] == 1].set_index("effect")
    assert first.loc["WT:theta0", "pvalue"] < 1e-6 and first.loc["WT:theta0", "accepted"]
    assert out["estimator"].covariate_effects_.loc["WT", "theta0"] == pytest.approx(0.4, abs=0.15)
    assert set(hist["direction"]) == {"forward", "backward"}


def test_scm_validation():
    model = LinearGaussian(n_params=1, sigma=0.3)
    X, _ = model.simulate(5, random_state=0)
    est = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), random_state=None)
    with pytest.raises(ValueError, match="random_state"):
        stepwise_covariates(est, X, [("WT", "theta0")])
    with pytest.raises(ValueError, match="p_forward"):
        stepwise_covariates(est, X, [("WT", "theta0")], p_forward=2)
    with pytest.raises(ValueError, match="unique"):
        stepwise_covariates(est.set_params(random_state=0), X, [])
