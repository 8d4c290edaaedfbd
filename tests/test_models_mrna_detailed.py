"""Detailed mRNA transfection model and its Rodas4 integrator."""

import warnings

import numba as nb
import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.linalg import expm

from sknlme.data._padded import Padded
from sknlme.models._mrna_detailed import (
    TIMES,
    MRNATransfectionDetailed,
    solve_detailed,
)
from sknlme.simulate._ode import STATUS_MAX_STEPS, make_rodas_solver

# ------------------------------------------------------------ generic integrator
_LIN = np.array([[-0.5, 1.0, 0.0], [-1.0, -0.5, 0.0], [0.3, 0.0, -1000.0]])  # stiff


@nb.njit
def _lin_rhs(y, p, out):
    for a in range(3):
        acc = 0.0
        for b in range(3):
            acc += p[3 * a + b] * y[b]
        out[a] = acc


@nb.njit
def _lin_jac(y, p, out):
    for a in range(3):
        for b in range(3):
            out[a, b] = p[3 * a + b]


@nb.njit
def _lin_obs(y, p):
    return y[2]


_lin_solve = make_rodas_solver(_lin_rhs, _lin_jac, _lin_obs, 3)


def test_rodas_stiff_linear_system_matches_matrix_exponential():
    times = np.linspace(0.0, 10.0, 41)[None, 1:]
    y0 = np.array([[1.0, 0.0, 0.0]])
    out, status, steps = np.empty(times.shape), np.empty(1, np.int64), np.empty(1, np.int64)
    rtol = 1e-8
    _lin_solve(_LIN.reshape(1, -1), y0, np.zeros(1), times, rtol, np.full((1, 3), 1e-14),
               100_000, out, status, steps)  # fmt: skip
    exact = np.array([(expm(_LIN * t) @ y0[0])[2] for t in times[0]])
    assert status[0] == 0
    # Global error of an order-4 method with per-step control at rtol is a small
    # multiple of rtol times the solution scale (~8 rtol on a harmonic
    # oscillator); 100 rtol leaves room without accepting an order-3 method.
    assert np.max(np.abs(out[0] - exact)) <= 100 * rtol * np.max(np.abs(exact))
    # stiffness (eigenvalue -1000) must not force explicit-size steps (h < 2e-3)
    assert steps[0] < 1_000


def test_rodas_reports_exhausted_step_budget():
    times = np.linspace(0.5, 10.0, 5)[None]
    out, status, steps = np.empty(times.shape), np.empty(1, np.int64), np.empty(1, np.int64)
    _lin_solve(_LIN.reshape(1, -1), np.array([[1.0, 0.0, 0.0]]), np.zeros(1), times, 1e-10,
               np.full((1, 3), 1e-14), 3, out, status, steps)  # fmt: skip
    assert status[0] == STATUS_MAX_STEPS
    assert np.isnan(out[0, -1])


# -------------------------------------------------------------- reference (scipy)
def _radau_reference(phi, times, rtol=1e-8, log_form=False):
    """Radau on the model as written (states m, e, r, p), rtol 1e-8, tiny atol.

    Where the endosome state e overflows (it grows like exp(delta2 t)), the
    reference integrates log e instead, with the model's cap (see module).
    """
    d1, d2, e0, k2s, k2, k1, r0, gamma, t0, off = np.exp(phi[:10])
    y = np.full(times.shape, np.log(off))
    after = times > t0
    if not after.any():
        return y

    def f(t, x):
        m, e, r, p = x
        return [-d1 * m * e - k1 * m * r + k2 * (r0 - r), d1 * m * e - d2 * (e0 - e),
                k2 * (r0 - r) - k1 * m * r, k2s * (r0 - r) - gamma * p]  # fmt: skip

    def jac(t, x):
        m, e, r, p = x
        return [[-d1 * e - k1 * r, -d1 * m, -k1 * m - k2, 0.0], [d1 * e, d1 * m + d2, 0.0, 0.0],
                [-k1 * r, 0.0, -k2 - k1 * m, 0.0], [0.0, 0.0, -k2s, -gamma]]  # fmt: skip

    def f_log(t, x):
        m, u, r, p = x
        e = np.exp(min(u, 600.0))
        return [-d1 * m * e - k1 * m * r + k2 * (r0 - r), d1 * m + d2 * (1 - e0 * np.exp(-u)),
                k2 * (r0 - r) - k1 * m * r, k2s * (r0 - r) - gamma * p]  # fmt: skip

    def jac_log(t, x):
        m, u, r, p = x
        e = np.exp(min(u, 600.0))
        return [[-d1 * e - k1 * r, -d1 * m * e * (u < 600), -k1 * m - k2, 0.0],
                [d1, d2 * e0 * np.exp(-u), 0.0, 0.0],
                [-k1 * r, 0.0, -k2 - k1 * m, 0.0], [0.0, 0.0, -k2s, -gamma]]  # fmt: skip

    atol = 1e-14 * np.array([1.0, e0, r0, off])
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            if log_form:
                raise ValueError
            sol = solve_ivp(f, (t0, times[-1]), [1.0, e0, r0, 0.0], method="Radau", jac=jac,
                            t_eval=times[after], rtol=rtol, atol=atol)  # fmt: skip
            ok = sol.success and np.all(np.isfinite(sol.y))
        except ValueError:  # overflow: NaN/inf reached the LU
            ok = False
        if not ok:
            atol[1] = 1e-12
            sol = solve_ivp(f_log, (t0, times[-1]), [1.0, np.log(e0), r0, 0.0], method="Radau",
                            jac=jac_log, t_eval=times[after], rtol=rtol, atol=atol)  # fmt: skip
            assert sol.success
    y[after] = np.log(np.maximum(sol.y[3], 0.0) + off)
    return y


def _max_error_against_radau(n, seed, log_form=False):
    model = MRNATransfectionDetailed()
    phi = model.sample_prior(n, random_state=seed)
    times = np.broadcast_to(TIMES, (n, TIMES.size))
    out, status, _ = solve_detailed(phi, times, rtol=model.rtol)
    ref = np.array([_radau_reference(p, TIMES, log_form=log_form) for p in phi])
    assert np.all(status == 0)
    # The error of y = log(p + offset) is the relative error of the observable
    # p + offset on its natural scale.
    return np.max(np.abs(out - ref))


def test_matches_radau_on_prior_draws():
    # 10 draws, reference in (m, log e, r, p) which Radau solves twice as fast
    # (still 0.2-2 s per draw); the 1,000-draw check of the equations as
    # written is marked slow.
    assert _max_error_against_radau(10, seed=11, log_form=True) <= 1e-4


@pytest.mark.slow
def test_matches_radau_on_1000_prior_draws():
    assert _max_error_against_radau(1_000, seed=12) <= 1e-4


# ------------------------------------------------------------------------ model
def _phi(t0=5.0, **over):
    phi = np.array([-1.0, -1.0, -1.0, 12.0, -1.0, 1.0, -1.0, -6.0, np.log(t0), 0.5, -1.0])
    for k, v in over.items():
        phi[MRNATransfectionDetailed().param_names.index(k)] = v
    return phi[None]


def test_switch_at_t0_resting_before():
    phi = _phi(t0=5.0)
    out, status, _ = solve_detailed(phi, TIMES[None])
    before = TIMES <= 5.0
    assert status[0] == 0
    np.testing.assert_array_equal(out[0, before], 0.5)  # log(offset) exactly: p = 0
    assert np.all(out[0, ~before] > 0.5)
    assert np.all(np.diff(out[0, ~before][:20]) > 0)  # protein builds up after the switch


def test_exploding_endosomes_stay_finite():
    # delta2 = e^4: e grows like exp(55 t), beyond float range by t = 13
    phi = _phi(t0=1.0, log_delta2=4.0)
    out, status, _ = solve_detailed(phi, TIMES[None])
    assert status[0] == 0 and np.all(np.isfinite(out))
    ref = _radau_reference(phi[0], TIMES, log_form=True)
    np.testing.assert_allclose(out[0], ref, atol=1e-4, rtol=0)


def test_simulate_reproducible_and_noisy():
    model = MRNATransfectionDetailed()
    X1, phi1 = model.simulate(4, random_state=5)
    X2, phi2 = model.simulate(4, random_state=5)
    X3, _ = model.simulate(4, random_state=6)
    v = lambda X: np.stack([r.values[:, 0] for r in X["records"]])  # noqa: E731
    np.testing.assert_array_equal(v(X1), v(X2))
    np.testing.assert_array_equal(phi1.to_numpy(), phi2.to_numpy())
    assert not np.allclose(v(X1), v(X3))
    pred = solve_detailed(phi1.to_numpy(), np.broadcast_to(TIMES, (4, 180)))[0]
    resid = (v(X1) - pred) / np.exp(phi1.to_numpy()[:, -1:])
    # 720 standardized residuals: their SD is 1 within 5 / sqrt(2 * 720) = 0.13
    assert abs(resid.std() - 1.0) < 0.13


def test_log_likelihood_is_gaussian_and_skips_missing():
    model = MRNATransfectionDetailed()
    X, phi = model.simulate(3, random_state=0)
    draws = phi.to_numpy()[:, None, :] + np.array([0.0, 0.05])[None, :, None]  # (3, 2, 11)
    ll = model.log_likelihood(draws, X)
    assert ll.shape == (3, 2)
    y = np.stack([r.values[:, 0] for r in X["records"]])
    for i in range(3):
        for k in range(2):
            pred = solve_detailed(draws[i, k][None], TIMES[None])[0][0]
            s = np.exp(draws[i, k, -1])
            expect = np.sum(-0.5 * ((y[i] - pred) / s) ** 2 - np.log(s) - 0.5 * np.log(2 * np.pi))
            np.testing.assert_allclose(ll[i, k], expect, rtol=1e-10)
    # NaN values (missing) contribute nothing
    from sknlme.data._records import IndividualRecords, make_individuals

    rec = X["records"].iloc[0]
    vals = rec.values.copy()
    vals[10:20] = np.nan
    X_missing = make_individuals([IndividualRecords(rec.times, vals)])
    ll_missing = model.log_likelihood(draws[:1], X_missing)
    pred = solve_detailed(draws[0, 0][None], TIMES[None])[0][0]
    s = np.exp(draws[0, 0, -1])
    keep = ~np.isnan(vals[:, 0])
    expect = np.sum(-0.5 * ((vals[keep, 0] - pred[keep]) / s) ** 2 - np.log(s)
                    - 0.5 * np.log(2 * np.pi))  # fmt: skip
    np.testing.assert_allclose(ll_missing[0, 0], expect, rtol=1e-10)


def test_unsorted_times_give_permuted_values():
    model = MRNATransfectionDetailed()
    phi = _phi(t0=0.5)
    times = np.array([[3.0, 1.0, 20.0, 2.0]])
    design = Padded(times, np.full((1, 4, 1), np.nan), np.ones((1, 4), bool),
                    np.zeros((1, 0)), np.zeros((1, 0)), np.zeros((1, 0), bool))  # fmt: skip
    pred = model._predict(phi, design, None)[0, :, 0]
    sorted_pred = solve_detailed(phi, np.sort(times, axis=1))[0][0]
    np.testing.assert_allclose(pred, sorted_pred[[2, 0, 3, 1]], rtol=0, atol=0)


def test_failures_are_reported_with_indices():
    model = MRNATransfectionDetailed(max_steps=5)
    phi = np.vstack([_phi(t0=100.0), _phi(t0=1.0)])  # the first never switches on
    design, _ = model.sample_design(2)
    with pytest.warns(RuntimeWarning, match=r"1 of 2 simulations failed.*\[1\]"):
        pred = model._predict(phi, design, None)
    assert np.all(np.isfinite(pred[0])) and np.isnan(pred[1, -1, 0])
    with pytest.raises(ValueError, match="log_t0 of individual 0"):
        model._predict(np.where(np.arange(11) == 8, np.nan, phi[:1]), model.sample_design(1)[0],
                       None)  # fmt: skip
