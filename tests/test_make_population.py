"""make_population: population draws, input forms, designs, large n."""

import numpy as np
import pytest

from sknlme.datasets import load_theophylline
from sknlme.datasets._population import make_population
from sknlme.models import LinearGaussian, OneCompartmentOral


def test_population_moments_and_forms():
    model = LinearGaussian(n_params=2)
    cov = np.array([[0.5, 0.2], [0.2, 0.3]])
    X, phi = make_population(model, 20000, dict(mean=[1.0, -1.0], cov=cov), random_state=0)
    assert X.shape[0] == 20000 and list(phi.columns) == ["theta0", "theta1"]
    # SE of a mean sqrt(0.5 / 2e4) = 0.005, of a covariance entry < sqrt(2 * 0.25 / 2e4) = 0.005
    np.testing.assert_allclose(phi.mean(), [1.0, -1.0], atol=0.025)
    np.testing.assert_allclose(np.cov(phi.to_numpy().T), cov, atol=0.025)
    a = make_population(
        model, 50, dict(mean={"theta1": -1, "theta0": 1}, sd=[0.5, 2.0]), random_state=1
    )[1]
    b = make_population(
        model, 50, dict(mean=[1, -1], var={"theta0": 0.25, "theta1": 4.0}), random_state=1
    )[1]
    c = make_population(model, 50, dict(mean=[1, -1], cov=np.diag([0.25, 4.0])), random_state=1)[1]
    np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(a, c, atol=1e-12)


def test_zero_variance_and_reproducibility():
    model = OneCompartmentOral()
    params = dict(mean=[-2.45, 0.47, -3.23, -0.34], sd=[0.0, 0.64, 0.17, 0.0])
    X1, p1 = make_population(model, 200, params, random_state=3)
    X2, p2 = make_population(model, 200, params, random_state=3)
    assert (p1["log_ke"] == -2.45).all() and p1["log_ka"].std() > 0.4
    np.testing.assert_array_equal(p1, p2)
    assert all(a == b for a, b in zip(X1["records"], X2["records"], strict=True))


def test_design_table_resampled():
    theo = load_theophylline()
    model = OneCompartmentOral()
    params = dict(mean=model.prior_mean, var=np.diag(model.prior_cov) / 10)
    X, _ = make_population(model, 12, params, random_state=0, design=theo)
    assert list(X.index) == list(theo.index)
    X, _ = make_population(model, 40, params, random_state=0, design=theo)
    assert list(X.index) == list(range(1, 41)) and set(X["WT"]) <= set(theo["WT"])


def test_bad_params():
    model = LinearGaussian(n_params=2)
    with pytest.raises(ValueError, match="exactly one of"):
        make_population(model, 5, dict(mean=[0, 0], sd=[1, 1], var=[1, 1]))
    with pytest.raises(ValueError, match="missing parameters"):
        make_population(model, 5, dict(mean={"theta0": 0}, sd=[1, 1]))
    with pytest.raises(ValueError, match="positive semi-definite"):
        make_population(model, 5, dict(mean=[0, 0], cov=[[1, 2], [2, 1]]))
    with pytest.raises(ValueError, match="non-negative"):
        make_population(model, 5, dict(mean=[0, 0], sd=[1, -1]))
    with pytest.raises(ValueError, match="unknown population_params"):
        make_population(model, 5, dict(mean=[0, 0], sd=[1, 1], corr=1))


def test_large_population_shapes():
    # memory/time sanity at n = 100,000 (shapes only)
    model = LinearGaussian(times=[0.0, 1.0], n_params=2)
    X, phi = make_population(model, 100_000, dict(mean=[0, 0], sd=[1, 1]), random_state=0)
    assert X.shape == (100_000, 1) and phi.shape == (100_000, 2)
    assert X["records"].iloc[-1].values.shape == (2, 1)
