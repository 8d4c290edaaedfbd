"""FunctionModel: a user model from a vectorised function."""

import numpy as np
import pytest
from scipy import stats

from sknlme.data import IndividualRecords, make_individuals
from sknlme.models import FunctionModel


def decay(phi, t):
    return np.exp(phi[:, :1] - np.exp(phi[:, 1:2]) * t)


def two_outputs(phi, t):
    return np.stack([phi[:, :1] + 0 * t, phi[:, 1:2] * t], axis=-1)


def bolus(phi, t, dose_t, dose_a):
    s = t[:, :, None] - dose_t[:, None, :]
    k = np.exp(phi[:, 0])[:, None, None]
    return (dose_a[:, None, :] * np.where(s >= 0, np.exp(-k * np.clip(s, 0, None)), 0)).sum(-1)


def test_simulate_shapes_and_likelihood_vs_scipy():
    times = np.linspace(0, 5, 6)
    model = FunctionModel(decay, ["log_y0", "log_k"], [0.0, -1.0, -2.0], [0.5, 0.5, 0.1], times)
    X, phi = model.simulate(5, random_state=0)
    assert list(phi.columns) == ["log_y0", "log_k", "log_sigma"]
    assert all(r.values.shape == (6, 1) for r in X["records"])
    draws = model.sample_prior(10, random_state=1).reshape(5, 2, 3)
    got = model.log_likelihood(draws, X)
    for i, rec in enumerate(X["records"]):
        for k in range(2):
            f = np.exp(draws[i, k, 0] - np.exp(draws[i, k, 1]) * rec.times)
            ref = stats.norm(f, np.exp(draws[i, k, 2])).logpdf(rec.values[:, 0]).sum()
            assert got[i, k] == pytest.approx(ref, rel=1e-10)
    # residuals of many individuals have the prior's noise level
    Xb, phib = model.simulate(
        2000, phi=np.tile([0.5, -1.0, np.log(0.2)], (2000, 1)), random_state=2
    )
    y = np.stack([r.values[:, 0] for r in Xb["records"]])
    z = (y - model.predict(phib.to_numpy(), Xb)[..., 0]) / 0.2
    assert abs(z.std() - 1) < 5 / np.sqrt(2 * z.size)  # 5 SE of the sample SD


def test_multi_output_proportional_error_with_missing():
    model = FunctionModel(
        two_outputs,
        ["a", "b"],
        [1.0, 1.0, -2.0],
        [0.1, 0.1, 0.1],
        [1.0, 2.0, 3.0],
        error="proportional",
        output_names=("u", "v"),
    )
    X, _ = model.simulate(3, random_state=0)
    rec = X["records"].iloc[0]
    vals = rec.values.copy()
    vals[1, 0] = np.nan
    X = make_individuals([IndividualRecords(rec.times, vals)] + list(X["records"].iloc[1:]))
    phi = model.sample_prior(3, random_state=3)[:, None, :]
    got = model.log_likelihood(phi, X)[:, 0]
    pred = model.predict(phi[:, 0], X)
    for i, r in enumerate(X["records"]):
        obs = ~np.isnan(r.values)
        sd = np.exp(phi[i, 0, 2]) * np.abs(pred[i])
        assert got[i] == pytest.approx(stats.norm(pred[i], sd).logpdf(r.values)[obs].sum())


def test_doses_reach_the_function():
    model = FunctionModel(
        bolus, ["log_k"], [-1.0, -3.0], [0.1, 0.1], [1.0, 5.0, 10.0], doses=([0.0, 4.0], [1.0, 2.0])
    )
    X, phi = model.simulate(2, random_state=0)
    assert X["records"].iloc[0].dose_amounts.tolist() == [1.0, 2.0]
    pred = model.predict(phi.to_numpy(), X)[:, :, 0]
    k = np.exp(phi["log_k"].to_numpy())[:, None]
    t = np.array([1.0, 5.0, 10.0])
    ref = np.exp(-k * t) + 2.0 * np.where(t >= 4, np.exp(-k * (t - 4)), 0)
    np.testing.assert_allclose(pred, ref)


def test_errors_and_warnings():
    with pytest.raises(TypeError, match="callable"):
        FunctionModel(3, ["a"], [0, 0], [1, 1], [0, 1])
    bad = FunctionModel(lambda p, t: p[:, :1], ["a"], [0, 0], [1, 1], [0.0, 1.0])
    with pytest.raises(ValueError, match="returned shape"):
        bad.simulate(2, random_state=0)

    def nan_pred(p, t):
        return np.where(t > 0.5, np.nan, p[:, :1])

    nan_model = FunctionModel(nan_pred, ["a"], [0, 0], [1, 1], [0.0, 1.0])
    with pytest.warns(RuntimeWarning, match="non-finite prediction"):
        nan_model.simulate(2, random_state=0)
