"""OneCompartmentOral: closed form vs ODE, limits, noise, likelihood, designs."""

import mpmath
import numpy as np
import pytest
from scipy import stats
from scipy.integrate import solve_ivp

from sknlme.data import IndividualRecords, make_individuals
from sknlme.datasets import load_theophylline
from sknlme.models import OneCompartmentOral
from sknlme.simulate import bateman


def _ode_concentration(phi, times, dose_times, dose_amounts):
    """Gut/central ODE, dose as a bolus into the gut, restarted at every dose."""
    ke, ka, cl = np.exp(phi[:3])
    v = cl / ke
    rhs = lambda t, a: [-ka * a[0], ka * a[0] - ke * a[1]]  # noqa: E731
    events = sorted(zip(dose_times, dose_amounts, strict=True))
    state, t_now, out = np.zeros(2), 0.0, np.zeros(len(times))
    bounds = [t for t, _ in events] + [np.inf]
    for k, (td, amt) in enumerate(events):
        if td > t_now:
            state = solve_ivp(rhs, (t_now, td), state, rtol=1e-12, atol=1e-14).y[:, -1]
        state, t_now = state + [amt, 0.0], td
        sel = (times > td) & (times <= bounds[k + 1])
        if sel.any():
            sol = solve_ivp(
                rhs, (td, times[sel].max()), state, t_eval=times[sel], rtol=1e-12, atol=1e-14
            )
            out[sel] = sol.y[1] / v
    return out


def _table(times, doses, values=None):
    recs = [
        IndividualRecords(t, np.zeros(len(t)) if values is None else v, dt, da)
        for t, (dt, da), v in zip(times, doses, values or [None] * len(times), strict=True)
    ]
    return make_individuals(recs)


def test_closed_form_matches_ode_with_repeated_doses():
    model = OneCompartmentOral()
    rng = np.random.default_rng(0)
    phi = model.sample_prior(6, random_state=1)
    times = [np.sort(rng.uniform(0, 48, 25)) for _ in range(6)]
    doses = [(np.array([0.0, 12.0, 24.0]), rng.uniform(3, 6, 3)) for _ in range(5)]
    doses.append((np.array([2.0]), np.array([4.0])))  # observations before the first dose
    X = _table(times, doses)
    pred = model.predict(phi, X)[..., 0]
    for i in range(6):
        ref = _ode_concentration(phi[i], times[i], *doses[i])
        # solve_ivp at rtol 1e-12 is accurate to ~1e-10; the brief asks for 1e-6 agreement
        np.testing.assert_allclose(pred[i], ref, rtol=1e-6, atol=1e-10 * ref.max())
        assert np.all(pred[i][times[i] <= doses[i][0][0]] == 0.0)


@pytest.mark.parametrize("rel", [0.0, 1e-14, 1e-10, 1e-7, 1e-5, 1e-3, 0.1, 0.7, 3.0])
def test_bateman_near_and_at_equal_rates(rel):
    # reference in 50-digit arithmetic; our formula avoids cancellation so 1e-13 holds
    a, s = 0.3, 7.0
    b = a * (1 + rel)
    with mpmath.workdps(50):
        A, B, S = mpmath.mpf(a), mpmath.mpf(b), mpmath.mpf(s)
        ref = (
            S * mpmath.exp(-A * S)
            if a == b
            else (mpmath.exp(-A * S) - mpmath.exp(-B * S)) / (B - A)
        )
    assert bateman(a, b, s) == pytest.approx(float(ref), rel=1e-13)
    assert bateman(b, a, s) == bateman(a, b, s)


def test_ka_equal_ke_limit_and_flip_flop():
    model = OneCompartmentOral()
    t = np.array([0.5, 1.0, 4.0, 24.0])
    X = _table([t], [(np.array([0.0]), np.array([5.0]))])
    k, cl = 0.2, 0.04
    phi = np.log([[k, k, cl, 0.5]])
    limit = 5.0 * k**2 / cl * t * np.exp(-k * t)  # derived limit D k² t exp(-k t) / Cl
    np.testing.assert_allclose(model.predict(phi, X)[0, :, 0], limit, rtol=1e-14)
    near = np.log([[k, k * (1 + 1e-9), cl, 0.5]])
    np.testing.assert_allclose(model.predict(near, X)[0, :, 0], limit, rtol=1e-8)
    # ka << ke (flip-flop) at large times: no overflow, matches the ODE
    phi_ff = np.log([[50.0, 0.01, 1.0, 0.5]])
    t2 = np.array([1.0, 100.0, 500.0])
    X2 = _table([t2], [(np.array([0.0]), np.array([5.0]))])
    got = model.predict(phi_ff, X2)[0, :, 0]
    ref = _ode_concentration(phi_ff[0], t2, [0.0], [5.0])
    np.testing.assert_allclose(got, ref, rtol=1e-6)


def test_design_sampler_properties():
    design, cov = OneCompartmentOral().sample_design(4000, random_state=0)
    assert cov is None
    n_obs = design.obs_mask.sum(1)
    assert set(np.unique(n_obs)) == {10, 11}
    # 30 % have 10 samples: binomial SD sqrt(0.21 / 4000) = 0.0072; allow 5 SD
    assert abs((n_obs == 10).mean() - 0.3) < 5 * 0.0072
    for i in range(200):
        t = design.times[i, design.obs_mask[i]]
        assert t[0] == 0.0 and np.all(np.diff(t) > 0) and t[-1] <= 25.0
    assert np.all((design.dose_amounts >= 3) & (design.dose_amounts <= 6))
    assert np.all(design.dose_times == 0) and design.dose_mask.all()


def test_reproducible_and_seed_dependent():
    model = OneCompartmentOral(error="combined")
    X1, p1 = model.simulate(50, random_state=3)
    X2, p2 = model.simulate(50, random_state=3)
    X3, _ = model.simulate(50, random_state=4)
    assert all(a == b for a, b in zip(X1["records"], X2["records"], strict=True))
    np.testing.assert_array_equal(p1, p2)
    assert not any(a == b for a, b in zip(X1["records"], X3["records"], strict=True))


@pytest.mark.parametrize("error", ["additive", "proportional", "combined"])
def test_noise_level(error):
    model = OneCompartmentOral(error=error)
    n = 3000
    eparams = {"additive": [np.log(0.5)], "proportional": [np.log(0.2)]}.get(
        error, [np.log(0.3), np.log(0.1)]
    )
    phi = np.tile(np.r_[np.log([0.08, 1.5, 0.04]), eparams], (n, 1))
    X, _ = model.simulate(n, phi=phi, random_state=0)
    pred = model.predict(phi, X)[..., 0]
    y = np.stack([np.r_[r.values[:, 0], [np.nan] * (11 - r.n_obs)] for r in X["records"]])
    keep = ~np.isnan(y) & (pred > 0)
    sd = model.error_model.sd(pred, eparams)
    z = (y - pred)[keep] / sd[keep]
    # standardised residuals: about 30,000 N(0, 1) values; SE of their SD is
    # 1 / sqrt(2 m) < 0.0045, of their mean 1 / sqrt(m) < 0.0063; allow 5 SE
    assert abs(z.std() - 1) < 5 / np.sqrt(2 * z.size)
    assert abs(z.mean()) < 5 / np.sqrt(z.size)
    assert stats.kstest(z, "norm").pvalue > 1e-4


@pytest.mark.parametrize("error", ["additive", "proportional", "combined"])
def test_log_likelihood_matches_scipy(error):
    model = OneCompartmentOral(error=error)
    X, _ = model.simulate(4, random_state=2, design=load_theophylline().iloc[:4])
    recs = list(X["records"])
    vals = recs[0].values.copy()
    vals[[0, 3]] = np.nan  # missing values (also the time-0 sample)
    recs[0] = IndividualRecords(recs[0].times, vals, recs[0].dose_times, recs[0].dose_amounts)
    recs[1:] = [
        IndividualRecords(r.times[1:], r.values[1:], r.dose_times, r.dose_amounts) for r in recs[1:]
    ]  # drop time 0 so proportional error has sd > 0 everywhere
    X = make_individuals(recs)
    phi = model.sample_prior(4 * 3, random_state=5).reshape(4, 3, -1)
    got = model.log_likelihood(phi, X)
    pred = model.predict(phi, X)[..., 0]
    for i, rec in enumerate(recs):
        obs = ~np.isnan(rec.values[:, 0])
        for k in range(3):
            f = pred[i, k, : rec.n_obs][obs]
            sd = model.error_model.sd(f, phi[i, k, 3:])
            ref = stats.norm(f, sd).logpdf(rec.values[obs, 0]).sum()
            assert got[i, k] == pytest.approx(ref, rel=1e-10)


def test_zero_sd_proportional_warns():
    model = OneCompartmentOral(error="proportional")
    theo = load_theophylline().iloc[:2]  # time-0 samples are > 0 where C(0) = 0
    phi = model.prior_mean[None, None, :].repeat(2, 0)
    with pytest.warns(RuntimeWarning, match="non-finite"):
        ll = model.log_likelihood(phi, theo)
    assert np.isneginf(ll).any()


def test_theophylline_design_and_resampling():
    theo = load_theophylline()
    model = OneCompartmentOral()
    X, phi = model.simulate(design=theo, random_state=0)
    assert list(X.index) == list(theo.index) and "WT" in X.columns
    for a, b in zip(X["records"], theo["records"], strict=True):
        np.testing.assert_array_equal(a.times, b.times)
        np.testing.assert_array_equal(a.dose_amounts, b.dose_amounts)
    resampling = OneCompartmentOral(design=theo)
    design, cov = resampling.sample_design(30, random_state=0)
    assert design.times.shape == (30, 11) and list(cov.columns) == ["WT", "DOSE"]
    assert set(np.round(design.dose_amounts[:, 0], 2)) <= set(theo["DOSE"].round(2))
    X2, _ = resampling.simulate(30, random_state=0)
    assert len(X2) == 30


def test_predict_shapes_and_grid():
    model = OneCompartmentOral()
    X, phi = model.simulate(5, random_state=0)
    draws = np.repeat(phi.to_numpy()[:, None, :], 3, axis=1)
    p2 = model.predict(phi.to_numpy(), X)
    p3 = model.predict(draws, X)
    assert p2.shape == (5, 11, 1) and p3.shape == (5, 3, 11, 1)
    np.testing.assert_array_equal(p3[:, 1], p2)
    short = [r.n_obs for r in X["records"]]
    assert all(np.isnan(p2[i, n:]).all() for i, n in enumerate(short))
    grid = model.predict(phi.to_numpy(), X, times=np.linspace(0, 24, 97))
    assert grid.shape == (5, 97, 1) and np.isfinite(grid).all()


def test_bad_input():
    with pytest.raises(ValueError, match="unknown error model"):
        OneCompartmentOral(error="exponential")
    model = OneCompartmentOral()
    X = make_individuals([IndividualRecords([0.0, 1.0], [1.0, 2.0])])
    with pytest.raises(ValueError, match="no dose"):
        model.predict(model.prior_mean[None], X)
