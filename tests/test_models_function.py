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


# ---------------------------------------------------------------- doses, covariates, designs
def wt_bolus(phi, t, dose_times, dose_amounts, covariates):
    """Bolus doses, elimination rate k = exp(log_k) * WT / 70 (superposition)."""
    k = np.exp(phi[:, :1]) * covariates["WT"][:, None] / 70.0
    dt = t[:, :, None] - dose_times[:, None, :]
    decay = np.exp(-k[..., None] * np.maximum(dt, 0.0)) * (dt >= 0)
    return (dose_amounts[:, None, :] * decay).sum(-1)


def _study():
    recs = [
        IndividualRecords([1.0, 4.0], [4.1, 2.0], [0.0], [5.0]),
        IndividualRecords([2.0, 3.0, 9.0], [1.5, 1.0, 3.0], [0.0, 6.0], [3.0, 4.0]),
        IndividualRecords([0.5], [2.0], [0.0], [2.0]),
    ]
    return make_individuals(recs, ids=[11, 12, 13], covariates={"WT": [70.0, 140.0, 35.0]})


def test_declared_doses_and_covariates_reach_the_function():
    X = _study()
    model = FunctionModel(wt_bolus, ["log_k"], [-1.0, -2.0], [0.1, 0.1], covariates=["WT"])
    assert model.covariate_names == ("WT",) and model.times is None
    phi = np.array([[-1.0, -1.5], [-0.5, -1.0], [-2.0, -2.0]])
    pred = model.predict(phi, X)[:, :, 0]
    for i, (rec, wt) in enumerate(zip(X["records"], X["WT"], strict=True)):
        k = np.exp(phi[i, 0]) * wt / 70.0
        ref = sum(
            a * np.where(rec.times >= s, np.exp(-k * (rec.times - s)), 0.0)
            for s, a in zip(rec.dose_times, rec.dose_amounts, strict=True)
        )
        np.testing.assert_allclose(pred[i, : rec.n_obs], ref, rtol=1e-12)
    ll = model.log_likelihood(phi[:, None, :], X)[:, 0]  # covariates reach the likelihood too
    for i, rec in enumerate(X["records"]):
        ref = stats.norm(pred[i, : rec.n_obs], np.exp(phi[i, 1])).logpdf(rec.values[:, 0]).sum()
        assert ll[i] == pytest.approx(ref)


def test_design_resamples_the_study_with_its_covariates():
    X = _study()
    model = FunctionModel(
        wt_bolus, ["log_k"], [-1.0, -2.0], [0.1, 0.1], covariates=["WT"], design=X
    )
    design, cov = model.sample_design(60, random_state=0)
    again, cov2 = model.sample_design(60, random_state=0)
    np.testing.assert_array_equal(design.times, again.times)
    assert np.isnan(design.values).all() and cov.equals(cov2)
    by_wt = {wt: rec for wt, rec in zip(X["WT"], X["records"], strict=True)}
    assert set(cov["WT"]) == set(by_wt)  # 60 draws of 3 rows: each is drawn (p miss ~ 3e-11)
    for i, wt in enumerate(cov["WT"]):  # each design keeps its own individual's covariate
        rec = by_wt[wt]
        np.testing.assert_array_equal(design.times[i, : rec.n_obs], rec.times)
        np.testing.assert_array_equal(design.dose_amounts[i, : rec.dose_amounts.size],
                                      rec.dose_amounts)  # fmt: skip
    sims, _ = model.simulate(5, random_state=1)
    assert set(sims["WT"]) <= set(by_wt)
    assert X["WT"].tolist() == [70.0, 140.0, 35.0]  # the study is not modified


def test_design_and_signature_errors():
    X = _study()
    with pytest.raises(ValueError, match="no designs to sample"):
        FunctionModel(wt_bolus, ["a"], [0, 0], [1, 1], covariates=["WT"]).simulate(2)
    with pytest.raises(ValueError, match="not both"):
        FunctionModel(wt_bolus, ["a"], [0, 0], [1, 1], [1.0], covariates=["WT"], design=X)
    with pytest.raises(TypeError, match="'covariates' argument"):
        FunctionModel(lambda p, t: t, ["a"], [0, 0], [1, 1], [1.0], covariates=["WT"])
    with pytest.raises(ValueError, match="needs covariate columns"):
        FunctionModel(wt_bolus, ["a"], [0, 0], [1, 1], covariates=["AGE"], design=X)
    no_doses = FunctionModel(lambda p, t: p[:, :1] + 0 * t, ["a"], [0, 0], [1, 1], [1.0])
    with pytest.raises(ValueError, match="row 0 has doses but func takes none"):
        no_doses.predict(np.zeros((3, 2)), X)
    inf = make_individuals([IndividualRecords([1.0], [1.0], [0.0], [2.0], dose_durations=[0.5])],
                           covariates={"WT": [70.0]})  # fmt: skip
    with pytest.raises(ValueError, match="does not simulate infusion"):
        FunctionModel(wt_bolus, ["a"], [0, 0], [1, 1], covariates=["WT"]).simulate(design=inf)

    def infusion(phi, t, dose_times, dose_amounts, dose_durations):
        return phi[:, :1] + 0 * t + dose_durations.sum(1, keepdims=True)

    model = FunctionModel(infusion, ["a"], [0, 0], [1, 1])
    assert model.dosing_features == {"infusion"}
    sim, _ = model.simulate(design=inf, phi=[[1.0, -30.0]], random_state=0)
    assert sim["records"].iloc[0].values[0, 0] == pytest.approx(1.5)


def test_config_names_the_function_or_says_why_not():
    import sknlme.models

    model = FunctionModel(np.exp, [], [0.0], [1.0], times=[1.0, 2.0], design=None)
    assert model.get_config()["func"] == "numpy:exp"
    for func, why in ((lambda p, t: t, "lambda"), (wt_bolus, None)):
        m = FunctionModel(
            func, ["a"], [0, 0], [1, 1], [1.0], covariates=["WT"] if why is None else ()
        )
        if why:
            with pytest.raises(TypeError, match=why):
                m.get_config()
        else:  # a test module's function imports back when its module is importable
            config = m.get_config()
            assert FunctionModel.from_config(config).func is wt_bolus
    assert sknlme.models.load_model("sknlme.models:FunctionModel", func=np.exp, param_names=[],
                                    prior_mean=[0.0], prior_cov=[1.0]).name == "exp"  # fmt: skip


def test_michaelis_menten_example_matches_an_ode_solver(monkeypatch):
    from pathlib import Path

    from scipy.integrate import solve_ivp

    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "examples" / "user_model"))
    from mm_model import mm_bolus

    phi = np.array([[np.log(2.0), np.log(5.0), np.log(20.0)]])
    t = np.array([[0.5, 1, 2, 4, 8, 12, 24, 30]])
    pred = mm_bolus(phi, t, np.array([[12.0, 0.0]]), np.array([[100.0, 200.0]]),
                    {"WT": np.array([70.0])})  # fmt: skip

    def rhs(_, c):
        return -2.0 * c / (5.0 + c)

    first = solve_ivp(rhs, (0, 12), [10.0], t_eval=[0.5, 1, 2, 4, 8], rtol=1e-10, atol=1e-12)
    c12 = solve_ivp(rhs, (0, 12), [10.0], rtol=1e-10, atol=1e-12).y[0, -1]
    second = solve_ivp(rhs, (12, 30), [c12 + 5.0], t_eval=[12, 24, 30], rtol=1e-10, atol=1e-12)
    # the solver's own error at rtol 1e-10 bounds the agreement (1e-8 leaves 100x room)
    np.testing.assert_allclose(pred[0], np.r_[first.y[0], second.y[0]], rtol=1e-8)


def test_load_model_errors_name_the_spec():
    from sknlme.models import load_model

    with pytest.raises(ValueError, match="cannot import model 'no_such_mod:f'"):
        load_model("no_such_mod:f")
    with pytest.raises(TypeError, match=r"cannot be called with \['design'\]"):
        load_model("sknlme.models:LinearGaussian", design=None)
    with pytest.raises(TypeError, match="returned a ndarray, not a sknlme Model"):
        load_model("numpy:zeros", shape=3)
    with pytest.raises(ValueError, match="unknown model"):
        load_model("no-such-model")
