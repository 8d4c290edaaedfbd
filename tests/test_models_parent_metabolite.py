"""Parent–metabolite PK model: exact linear-ODE solver against scipy, likelihood, training."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.integrate import solve_ivp
from scipy.linalg import expm

from sknlme.data import IndividualRecords, make_individuals
from sknlme.models import ParentMetabolite, get_model
from sknlme.models._parent_metabolite import PRIOR_MEAN
from sknlme.simulate import expm_small, linear_dosed_solve

MODEL = ParentMetabolite()


def _rhs_reference(phi, wt):
    """The model's ODE written out from its equations, independently of ``system_matrix``."""
    q25, v2, clp, clm, v3, q34, v4, ka = np.exp(phi[:8])
    fm = 0.21 * np.exp(phi[10])
    cs, vs = (wt / 70) ** 0.75, wt / 70
    q25, clp, clm, q34, qh = q25 * cs, clp * cs, clm * cs, q34 * cs, 80 * cs
    v2, v3, v4, v5 = v2 * vs, v3 * vs, v4 * vs, 588 * vs

    def rhs(t, a):
        a1, a2, a3, a4, a5 = a
        cliv = (ka * a1 + qh / v2 * a2) / (qh + clp)
        return [
            -ka * a1,
            qh * cliv - qh / v2 * a2 - q25 / v2 * a2 + q25 / v5 * a5,
            fm * clp * cliv - clm / v3 * a3 - q34 / v3 * a3 + q34 / v4 * a4,
            q34 / v3 * a3 - q34 / v4 * a4,
            q25 / v2 * a2 - q25 / v5 * a5,
        ]

    return rhs


def _reference_amounts(phi, wt, dose_times, dose, times):
    """A2, A3 at ``times`` by solve_ivp (rtol 1e-10), restarting at each dose."""
    rhs = _rhs_reference(phi, wt)
    a, t0, out = np.zeros(5), dose_times[0], {}
    events = sorted(set(dose_times) | {t for t in times if t > dose_times[0]})
    pending = sorted(times)
    for te in events:
        if te > t0:
            sol = solve_ivp(rhs, (t0, te), a, method="LSODA", rtol=1e-10, atol=1e-14)
            a, t0 = sol.y[:, -1], te
        if te in dose_times:
            a = a.copy()
            a[0] += dose
        while pending and pending[0] <= te:
            out[pending.pop(0)] = a[1:3].copy()
    for t in pending:
        out[t] = np.zeros(2)
    return np.array([out[t] for t in times])


def _individuals(wt, dos, dose_times, times):
    rec = [
        IndividualRecords(
            times, np.full((len(times), 2), 0.0), dose_times, np.full(len(dose_times), d)
        )
        for d in dos
    ]
    return make_individuals(rec, covariates=pd.DataFrame({"WT": wt, "DOS": dos}))


@pytest.mark.parametrize(
    "dose_times",
    [np.array([0.0]), 24.0 * np.arange(10), np.array([0.0, 12.0, 36.0, 37.0, 100.0])],
    ids=["single", "daily", "irregular"],
)
def test_simulation_matches_solve_ivp(dose_times):
    rng = np.random.default_rng(1)
    times = np.array([0.5, 3.0, 11.0, 24.0, 30.0, 30.5, 99.0, 150.0, 400.0])
    wt, dos = np.array([45.0, 70.0, 120.0]), np.array([25.0, 37.5, 50.0])
    phi = PRIOR_MEAN + rng.standard_normal((3, 11)) * np.sqrt([4.5, 1, 1, 1, 1, 1, 1, 4.5, 2, 2, 1])
    phi[0, 7] = 1.5  # fast absorption for one individual
    X = _individuals(wt, dos, dose_times, times)
    pred = MODEL.predict(phi, X)
    assert pred.shape == (3, times.size, 2)
    shuffled = np.random.default_rng(0).permutation(times.size)  # any order of times
    np.testing.assert_array_equal(MODEL.predict(phi, X, times=times[shuffled]), pred[:, shuffled])
    for i in range(3):
        ref = _reference_amounts(phi[i], wt[i], list(dose_times), dos[i], list(times))
        # amounts above the floor agree to ~1e-8 relative (the reference's tolerance
        # is 1e-10; the matrix exponential is exact to round-off)
        above = ref > 1e-3
        np.testing.assert_allclose(pred[i][above], np.log(ref[above]), rtol=0, atol=1e-7)
        np.testing.assert_array_equal(pred[i][~above], np.log(1e-3))


def test_expm_small_matches_scipy_on_compartmental_matrices():
    rng = np.random.default_rng(0)
    from sknlme.models._parent_metabolite import system_matrix

    phi = MODEL.sample_prior(200, random_state=0)
    m = system_matrix(phi, rng.uniform(40, 150, 200))
    out, work = np.empty((5, 5)), np.empty((6, 5, 5))
    worst = 0.0
    for mi, s in zip(m, rng.uniform(0, 700, 200), strict=True):
        expm_small(mi, s, out, work)
        ref = expm(mi * s)
        worst = max(worst, np.abs(out - ref).max() / np.abs(ref).max())
    assert worst < 1e-12  # measured 1e-14 here


def test_dose_at_observation_time_counts_and_before_first_dose_is_zero():
    m = np.array([[[-1.0, 0.0], [1.0, -0.5]]])
    out = np.empty((1, 3, 1))
    linear_dosed_solve(m, np.array([[0.5, 1.0, 2.0]]), np.array([[1.0]]), np.array([[2.0]]), 0,
                       np.array([0]), out)  # fmt: skip
    np.testing.assert_allclose(out[0, :, 0], [0.0, 2.0, 2.0 * np.exp(-1.0)], rtol=1e-14)


def test_log_likelihood_by_hand_and_floor():
    times = np.array([1.0, 5.0, 24.0])
    X = _individuals([70.0], [50.0], [0.0], times)
    phi = PRIOR_MEAN.copy()
    phi[[8, 9]] = [-1.2, -0.4]
    pred = MODEL.predict(phi[None], X)[0]
    rng = np.random.default_rng(0)
    y = pred + rng.standard_normal(pred.shape) * 0.3
    y[1, 1] = np.nan  # a missing metabolite value
    rec = IndividualRecords(times, y, [0.0], [50.0])
    X = make_individuals([rec], covariates=pd.DataFrame({"WT": [70.0], "DOS": [50.0]}))
    sd = np.exp(phi[[8, 9]])
    ok = ~np.isnan(y)
    by_hand = np.sum((-0.5 * ((y - pred) / sd) ** 2 - np.log(sd) - 0.5 * np.log(2 * np.pi))[ok])
    ll = MODEL.log_likelihood(np.stack([phi, phi])[None], X)
    assert ll.shape == (1, 2)
    np.testing.assert_allclose(ll, by_hand, rtol=1e-12)
    # floor: observing before the first dose gives log(0.001) exactly
    early = _individuals([70.0], [50.0], [10.0], np.array([1.0, 5.0]))
    np.testing.assert_array_equal(MODEL.predict(phi[None], early), np.log(1e-3))


def test_shapes_registry_and_errors():
    assert get_model("parent-metabolite").param_names == MODEL.param_names
    assert MODEL.structural_params[-1] == "log_fm_ratio" and MODEL.has_likelihood
    X, phi = MODEL.simulate(4, random_state=0)
    snapshot = X.copy(deep=True)
    assert MODEL.predict(phi.to_numpy()[:, None].repeat(3, 1), X).shape == (4, 3, 12, 2)
    with pytest.raises(ValueError, match=r"\['DOS'\]"):
        MODEL.predict(phi.to_numpy(), X.drop(columns="DOS"))
    bad = X.copy()
    bad["DOS"] = 10.0
    with pytest.raises(ValueError, match="DOS is 10.0"):
        MODEL.predict(phi.to_numpy(), bad)
    bad = X.copy()
    bad.loc[bad.index[2], "WT"] = -3.0
    with pytest.raises(ValueError, match="'WT' of individual 2 is -3.0"):
        MODEL.predict(phi.to_numpy(), bad)
    pd.testing.assert_frame_equal(X.drop(columns="records"), snapshot.drop(columns="records"))
    # resampling a given design keeps its covariates
    design, cov = ParentMetabolite(design=X).sample_design(6, random_state=0)
    assert design.times.shape == (6, 12) and set(cov["DOS"]) <= set(X["DOS"])


def test_simulation_speed_and_validity():
    # Measured on 2 shared cores: 100,000 individuals (12 samples, 28 daily doses)
    # in 3.4 s, ~13 matrix exponentials each (one per sample + the dosing interval).
    design, cov = MODEL.sample_design(2000, random_state=0)
    values = MODEL.simulate_padded(MODEL.sample_prior(2000, random_state=1), design, cov, 2)
    assert values.shape == (2000, 12, 2) and np.isfinite(values).all()


def test_tiny_network_trains_and_importance_likelihood_runs():
    # A population fit (NLMEPopulationEstimator, importance likelihood) on 6
    # individuals took 86 s on 2 shared cores (780 likelihood batches, half for
    # the finite-difference Hessian), so the test evaluates the importance
    # likelihood directly and checks it against plain Monte Carlo.
    from sknlme.population import ImportanceObjective, PopulationObjective, amortized_offsets
    from sknlme.posterior import AmortizedPosterior

    tiny = dict(hidden_units=(16,), flow_depth=2, summary_dim=8, batch_size=64, random_state=0)
    post = AmortizedPosterior(MODEL, n_simulations=400, epochs=1, **tiny).fit()
    truth = np.tile(MODEL.prior_mean, (4, 1))  # one typical patient, so beta is everyone's
    X, _ = MODEL.simulate(design=MODEL.simulate(4, random_state=5)[0], phi=truth, random_state=6)
    draws = post.sample(X, 50, random_state=0)
    assert draws.shape == (4, 50, 11) and np.isfinite(draws).all()
    offsets = amortized_offsets(draws, MODEL.prior_mean, MODEL.prior_cov)
    base = PopulationObjective(draws, offsets, list(MODEL.param_names), random_effects=["log_ka"])
    obj = ImportanceObjective(base, MODEL, X, 200, random_state=0)
    beta = MODEL.prior_mean
    x = obj.pack(beta=beta, cov=np.diag(np.where(np.arange(11) == 7, 0.05, 1.0)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ll = obj.individual_loglik(x)
    # plain Monte Carlo over the one random effect (log_ka ~ N(beta, 0.05))
    rng = np.random.default_rng(0)
    mc = np.repeat(np.broadcast_to(beta, (4, 1, 11)), 4000, axis=1).copy()
    mc[..., 7] += np.sqrt(0.05) * rng.standard_normal((4, 4000))
    lik = MODEL.log_likelihood(mc, X)
    ref = np.log(np.mean(np.exp(lik - lik.max(1, keepdims=True)), 1)) + lik.max(1)
    assert ll.shape == (4,) and np.isfinite(ll).all()
    # measured: differences up to 0.22 (200 proposal draws around a one-epoch
    # network's posterior, so few effective draws; 2000 plain MC draws)
    np.testing.assert_allclose(ll, ref, atol=0.5)


def test_overflowing_parameters_give_nan_values_and_zero_likelihood():
    X, phi = MODEL.simulate(2, random_state=0)
    wild = phi.to_numpy().copy()
    wild[1, [1, 4]] = [-73.0, -115.0]  # V2 ~ 1e-32 L, V3 ~ 1e-50 L: expm overflows
    with pytest.warns(RuntimeWarning, match=r"1 of 2 .*individuals \[1\]"):
        ll = MODEL.log_likelihood(wild[:, None], X)
    assert np.isfinite(ll[0, 0]) and ll[1, 0] == -np.inf
