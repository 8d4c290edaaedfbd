"""Centred and power covariate models: the intercept is the parameter at the reference."""

import warnings

import numpy as np
import pandas as pd
import pytest

from sknlme.cli import _parse_covariates
from sknlme.models import LinearGaussian
from sknlme.population import NLMEPopulationEstimator
from sknlme.population._inputs import covariate_design, covariate_transforms
from sknlme.posterior import ExactGaussianPosterior

LOG_CL, EXPONENT, WT_REF = -3.2, 0.75, 70.0  # allometric clearance, theophylline-like


def _population(n=60, seed=0):
    """theta0 = log CL_i = LOG_CL + 0.75 log(WT_i / 70) + eta, WT ~ theophylline's 54-86 kg."""
    model = LinearGaussian(n_params=1, sigma=0.2)
    rng = np.random.default_rng(seed)
    wt = rng.uniform(54.0, 86.0, n)
    phi = LOG_CL + EXPONENT * np.log(wt / WT_REF) + 0.1 * rng.standard_normal(n)
    X, _ = model.simulate(phi=phi[:, None], random_state=seed + 1)
    X.insert(0, "WT", wt)
    return model, X


def _fit(post, X, covariates):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return NLMEPopulationEstimator(
            post, covariates=covariates, n_samples=100, n_starts=2, random_state=0
        ).fit(X)


def test_power_model_intercept_is_value_at_reference():
    model, X = _population()
    post = ExactGaussianPosterior(model).fit()
    power = _fit(post, X, {"WT": {"params": ["theta0"], "model": "log", "center": WT_REF}})
    se = power.standard_errors_
    beta, b = power.fixed_effects_["theta0"], power.covariate_effects_.loc["WT", "theta0"]
    # 4 SE: a two-sided 1e-4 test each
    assert abs(beta - LOG_CL) < 4 * se["theta0"]
    assert abs(b - EXPONENT) < 4 * se["WT:theta0"]
    # the same fit as the old list form on log(WT / 70) computed beforehand
    pre = _fit(post, X.assign(WT=np.log(X["WT"] / WT_REF)), {"WT": ["theta0"]})
    np.testing.assert_allclose(power.x_, pre.x_, atol=1e-6)
    assert power.loglik_ == pytest.approx(pre.loglik_, abs=1e-9)
    # linear centring: the old list form on WT - 70 precomputed is the same fit
    linear = _fit(post, X, {"WT": {"params": ["theta0"], "model": "linear", "center": WT_REF}})
    X2 = X.assign(WT=X["WT"] - WT_REF)
    old = _fit(post, X2, {"WT": ["theta0"]})
    np.testing.assert_allclose(linear.x_, old.x_, atol=1e-6)
    # the individual table's population means use the same transform
    means = power.individual_table(X)
    assert np.isfinite(means.select_dtypes("number").to_numpy()).all()


def test_transforms_and_errors():
    X = pd.DataFrame({"WT": [35.0, 70.0], "AGE": [20.0, 40.0]})
    spec = {
        "WT": {"params": "a", "model": "log", "center": 70},
        "AGE": {"params": ["a"], "center": 30},
    }
    np.testing.assert_allclose(covariate_design(X, spec), [[np.log(0.5), -10.0], [0.0, 10.0]])
    assert covariate_transforms({"WT": ["a"]}) == {"WT": ("linear", None)}
    with pytest.raises(ValueError, match="positive values"):
        covariate_design(X.assign(WT=[0.0, 70.0]), spec)
    with pytest.raises(ValueError, match="must be one of"):
        covariate_transforms({"WT": {"params": ["a"], "model": "exp"}})
    with pytest.raises(ValueError, match="positive"):
        covariate_transforms({"WT": {"params": ["a"], "model": "log", "center": -1}})
    with pytest.raises(ValueError, match="keys"):
        covariate_transforms({"WT": {"param": ["a"]}})


def test_cli_parsing():
    assert _parse_covariates("WT:log_Cl:log:70,WT:log_V:log:70,AGE:log_V") == {
        "WT": {"params": ["log_Cl", "log_V"], "model": "log", "center": 70.0},
        "AGE": ["log_V"],
    }
    assert _parse_covariates("WT:log_Cl:linear") == {
        "WT": {"params": ["log_Cl"], "model": "linear", "center": None}
    }
    for bad in ("WT:log_Cl:exp:70", "WT:log_Cl:log:x", "WT:a:log:70,WT:b:linear:70", "WT"):
        with pytest.raises(SystemExit):
            _parse_covariates(bad)
