"""MRNATransfection: closed form vs ODE, delta≈gamma, designs, noise, likelihood."""

import mpmath
import numpy as np
import pytest
from scipy import stats
from scipy.integrate import solve_ivp

from sknlme.data import IndividualRecords, make_individuals
from sknlme.models import MRNATransfection
from sknlme.models._mrna import TIMES


def _ode_log_expression(phi, times):
    delta, gamma, kms, t0, offset = np.exp(phi[:5])
    rhs = lambda t, x: [-delta * x[0], kms * x[0] - gamma * x[1]]  # noqa: E731
    after = times > t0
    p = np.zeros(len(times))
    if after.any():
        sol = solve_ivp(
            rhs,
            (t0, times[after][-1]),
            [1.0, 0.0],
            t_eval=times[after],
            method="Radau",
            rtol=1e-12,
            atol=1e-14 * kms,
        )
        p[after] = sol.y[1]
    return np.log(p + offset)


def _table(times, values=None):
    return make_individuals(
        [
            IndividualRecords(t, np.zeros(len(t)) if values is None else v)
            for t, v in zip(times, values or [None] * len(times), strict=True)
        ]
    )


def test_closed_form_matches_ode():
    model = MRNATransfection()
    phi = model.sample_prior(8, random_state=0)
    phi[:, 3] = np.clip(phi[:, 3], -3, 3)  # t0 within the observed window
    X = _table([TIMES] * 4 + [np.sort(np.random.default_rng(1).uniform(0, 30, 60))] * 4)
    pred = model.predict(phi, X)[..., 0]
    for i, rec in enumerate(X["records"]):
        ref = _ode_log_expression(phi[i], rec.times)
        # log(p + offset) to 1e-6 absolute = (p + offset) to 1e-6 relative
        np.testing.assert_allclose(pred[i, : rec.n_obs], ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("rel", [0.0, 1e-13, 1e-9, 1e-6, 1e-3, 0.2])
def test_delta_near_gamma(rel):
    model = MRNATransfection()
    gamma, kms, t0, offset = 0.1, 100.0, 1.0, 2.0
    delta = gamma * (1 + rel)
    phi = np.log([[delta, gamma, kms, t0, offset, 0.3]])
    X = _table([TIMES])
    got = model.predict(phi, X)[0, :, 0]
    with mpmath.workdps(40):
        ref = []
        for t in TIMES:
            s = mpmath.mpf(t) - t0
            if s <= 0:
                p = mpmath.mpf(0)
            elif rel == 0:
                p = kms * s * mpmath.exp(-gamma * s)
            else:
                d, g = mpmath.mpf(delta), mpmath.mpf(gamma)
                p = kms / (d - g) * (mpmath.exp(-g * s) - mpmath.exp(-d * s))
            ref.append(float(mpmath.log(p + offset)))
    # equal-step recurrence: < 1e-10 relative drift (see _mrna_row); allow 1e-11 abs in log
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-11)
    assert np.all(got[TIMES <= t0] == np.log(offset))


def test_design_default_and_ragged():
    d, cov = MRNATransfection().sample_design(3, random_state=0)
    assert cov is None and d.times.shape == (3, 180) and d.obs_mask.all()
    np.testing.assert_allclose(d.times[0], np.arange(1, 181) / 6)
    assert d.times[0, 0] == pytest.approx(1 / 6) and d.times[0, -1] == pytest.approx(30.0)
    d, _ = MRNATransfection(max_time=(5.0, 30.0)).sample_design(500, random_state=0)
    n_obs = d.obs_mask.sum(1)
    assert n_obs.min() >= 30 and n_obs.max() <= 180 and len(np.unique(n_obs)) > 50
    for i in range(20):  # padding repeats the last real time, masks are left-aligned
        k = n_obs[i]
        assert d.obs_mask[i, :k].all() and not d.obs_mask[i, k:].any()
        assert np.all(d.times[i, k:] == d.times[i, k - 1]) and d.times[i, k - 1] <= 30


def test_missing_rate_and_noise_level():
    model = MRNATransfection(missing_rate=0.2)
    n = 400
    phi = np.tile(np.log([0.3, 0.05, 200.0, 1.5, 1.0, 0.25]), (n, 1))
    X, _ = model.simulate(n, phi=phi, random_state=1)
    y = np.stack([r.values[:, 0] for r in X["records"]])
    miss = np.isnan(y)
    # 72,000 Bernoulli(0.2) draws: SD of the fraction 0.0015; allow 5 SD
    assert abs(miss.mean() - 0.2) < 5 * np.sqrt(0.2 * 0.8 / y.size)
    z = (y - model.predict(phi, X)[..., 0])[~miss] / 0.25
    # ~57,600 N(0,1) residuals: SE of the SD 1/sqrt(2m) = 0.003; allow 5 SE
    assert abs(z.std() - 1) < 5 / np.sqrt(2 * z.size)
    assert stats.kstest(z, "norm").pvalue > 1e-4


def test_reproducible_and_seed_dependent():
    model = MRNATransfection(max_time=(10, 30), missing_rate=(0, 0.3))
    X1, p1 = model.simulate(20, random_state=7)
    X2, p2 = model.simulate(20, random_state=7)
    X3, _ = model.simulate(20, random_state=8)
    assert all(a == b for a, b in zip(X1["records"], X2["records"], strict=True))
    np.testing.assert_array_equal(p1, p2)
    assert not any(a == b for a, b in zip(X1["records"], X3["records"], strict=True))


def test_log_likelihood_matches_scipy():
    model = MRNATransfection(max_time=(5, 30), missing_rate=0.1)
    X, _ = model.simulate(3, random_state=0)
    phi = model.sample_prior(6, random_state=1).reshape(3, 2, 6)
    got = model.log_likelihood(phi, X)
    pred = model.predict(phi, X)[..., 0]
    for i, rec in enumerate(X["records"]):
        obs = ~np.isnan(rec.values[:, 0])
        assert not obs.all()
        for k in range(2):
            f = pred[i, k, : rec.n_obs][obs]
            ref = stats.norm(f, np.exp(phi[i, k, 5])).logpdf(rec.values[obs, 0]).sum()
            assert got[i, k] == pytest.approx(ref, rel=1e-10)


def test_bad_options():
    with pytest.raises(ValueError, match="max_time"):
        MRNATransfection(max_time=100.0)
    with pytest.raises(ValueError, match="missing_rate"):
        MRNATransfection(missing_rate=(0.5, 0.1))
