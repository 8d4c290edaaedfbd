"""The fixed-proposal surrogate of the importance likelihood and its re-centred optimisation."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import approx_fprime, minimize
from scipy.special import logsumexp
from scipy.stats import multivariate_normal, multivariate_t

from sknlme.models import (
    FunctionModel,
    LinearCompartmental,
    LinearGaussian,
    MRNATransfection,
    OneCompartmentOral,
    additive_log_sd,
)
from sknlme.population import ImportanceObjective, PopulationObjective
from sknlme.population import _surrogate as surrogate_module
from sknlme.population._fixed_point import minimize_fixed_proposal
from sknlme.population._proposal import t_proposal
from sknlme.population._rescoring import mc_standard_errors
from sknlme.population._surrogate import FixedProposalSurrogate
from sknlme.population._taylor import shifted_logliks, taylor_coefficients, taylor_shifts
from sknlme.posterior import ExactGaussianPosterior, LaplacePosterior


@pytest.fixture(scope="module")
def oral():
    """Importance objective of 12 simulated oral subjects; log_sigma has no random effect."""
    model = OneCompartmentOral()
    X, _ = model.simulate(12, random_state=3)
    study = model.prepare(X)
    draws = LaplacePosterior(model).fit().sample(X, 60, random_state=0)
    re = ["log_ke", "log_ka", "log_Cl"]
    base = PopulationObjective(
        draws, np.zeros(draws.shape[:2]), model.param_names, random_effects=re
    )
    obj = ImportanceObjective(base, model, study, 300, random_state=1)
    x = obj.pack(beta=np.asarray(model.prior_mean), cov=np.diag([0.1, 0.3, 0.1, 1.0]))
    return obj, x


def test_surrogate_is_the_importance_objective_at_its_centre(oral):
    obj, x = oral
    sur = FixedProposalSurrogate(obj, x)
    assert obj.fe.tolist() == [3]
    assert np.isclose(sur(x), obj(x), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(sur.individual_loglik(x), obj.individual_loglik(x), atol=1e-9)
    np.testing.assert_allclose(sur.weights(x), obj.weights(x), atol=1e-12)


@settings(max_examples=10, deadline=None)
@given(st.lists(st.floats(-0.3, 0.3), min_size=7, max_size=7))
def test_surrogate_gradient_is_its_derivative(oral, shift):
    obj, x = oral
    sur = FixedProposalSurrogate(obj, x)
    y = x + np.asarray(shift)
    num = approx_fprime(y, sur, 1e-6)
    # central values near 1e3: forward differences at step 1e-6 carry ~1e-10 / 1e-6
    # rounding and ~H h / 2 ~ 1e-3 truncation for curvatures up to ~1e3
    np.testing.assert_allclose(sur.gradient(y), num, rtol=1e-3, atol=2e-2)


def test_surrogate_tracks_the_likelihood_in_the_fixed_parameter(oral):
    """log_sigma moved by 0.05: the expansion against the exact likelihood of the same draws."""
    obj, x = oral
    sur = FixedProposalSurrogate(obj, x)
    y = x.copy()
    y[obj.x_names.index("log_sigma")] += 0.05
    _, log_ratio, ll = shifted_logliks(obj, x, np.array([[0.05]]))
    exact = -np.sum(logsumexp(ll[0] + log_ratio, axis=1) - np.log(obj.K))
    # third-order error per draw: 0.05^3 / 6 |d3 l|, with |d3 l| = 4 SS / sigma^2 ~ 4 n_obs
    # for an error model near the data (11 observations): ~1e-3 per individual
    assert abs(sur(y) - exact) < 12 * 5e-3


@settings(max_examples=25, deadline=None)
@given(
    st.integers(1, 3),
    st.lists(st.floats(-2, 2), min_size=10, max_size=10),
    st.floats(0.01, 0.2),
)
def test_taylor_coefficients_recover_a_quadratic(f, coefs, step):
    c = np.asarray(coefs)
    g = c[:f]
    M = np.zeros((f, f))
    M[np.triu_indices(f)] = c[3 : 3 + f * (f + 1) // 2]
    H = M + M.T
    shifts = taylor_shifts(f, np.full(f, step))
    values = shifts @ g + 0.5 * np.einsum("sf,fg,sg->s", shifts, H, shifts)
    a, hess = taylor_coefficients(values[:, None, None], np.full(f, step))
    np.testing.assert_allclose(a[0, 0], g, atol=1e-9)
    np.testing.assert_allclose(hess[0, 0], H, atol=1e-7)


def test_t_mixture_kernel_matches_scipy_densities():
    """Draws and log ratios against scipy's multivariate normal and t densities."""
    rng = np.random.default_rng(0)
    n, k_t, k_p, r, df, infl = 3, 40, 10, 2, 5.0, 1.5
    std = rng.standard_t(df, size=(n, k_t, r))
    log_t0 = multivariate_t(np.zeros(r), np.eye(r), df=df).logpdf(std.reshape(-1, r))
    X = rng.normal(size=(n, r, r))
    lam = X @ np.swapaxes(X, 1, 2) + np.eye(r)
    eta, m = rng.normal(size=(n, r)), rng.normal(size=(1, n, r))
    psi_cov = np.array([[[1.0, 0.3], [0.3, 0.5]]])
    pop = rng.normal(size=(n, k_p, r))
    psi, ratio = t_proposal(std, log_t0.reshape(n, k_t), lam, eta, m, psi_cov, infl, pop, df)
    prec_pop = np.linalg.inv(psi_cov[0])
    for i in range(n):
        prec = lam[i] + prec_pop
        centre = np.linalg.solve(prec, eta[i] + prec_pop @ m[0, i])
        t = multivariate_t(centre, infl**2 * np.linalg.inv(prec), df=df)
        pop_d = multivariate_normal(m[0, i], psi_cov[0])
        g = np.logaddexp(
            np.log(k_t / (k_t + k_p)) + t.logpdf(psi[0, i]),
            np.log(k_p / (k_t + k_p)) + pop_d.logpdf(psi[0, i]),
        )
        np.testing.assert_allclose(ratio[0, i], pop_d.logpdf(psi[0, i]) - g, atol=1e-10)
        np.testing.assert_allclose(
            psi[0, i, k_t:], m[0, i] + pop[i] @ np.linalg.cholesky(psi_cov[0]).T, atol=1e-12
        )


def test_fixed_point_reaches_the_exact_maximum_likelihood():
    """LinearGaussian: closed-form marginal likelihood, maximised directly."""
    model = LinearGaussian(n_params=2, sigma=0.3)
    X, _ = model.simulate(40, random_state=0)
    draws = ExactGaussianPosterior(model).fit().sample(X, 50, random_state=0)
    base = PopulationObjective(draws, np.zeros((40, 50)), model.param_names)
    obj = ImportanceObjective(base, model, X, 400, random_state=0)
    res = minimize_fixed_proposal(obj, *obj.bounds, obj.pack(beta=[0.0, 0.0], cov=np.eye(2)))
    assert res.exitflag != -1 and "fixed point" in res.message

    def exact(v):
        return -model.marginal_loglik(X, v[:2], np.diag(np.exp(v[2:]))).sum()

    ml = minimize(exact, np.zeros(4))
    # the exact log-likelihood at the fixed point is within a few MC SEs of the
    # maximum; with 400 draws per individual the total MC SE is ~0.01 here
    se = np.sqrt(np.sum(mc_standard_errors(obj.weights(res.x)) ** 2))
    assert exact(res.x) - ml.fun < max(3 * se, 0.01)
    np.testing.assert_allclose(res.x, ml.x, atol=0.05)


def test_profile_interval_of_the_importance_likelihood_is_the_exact_one():
    """LinearGaussian: the exact profile likelihood of the mean, maximised over its variance.

    The re-centred profile steps run on importance estimates whose log-likelihood
    MC SE is <= 0.03 after the fit's polish; at a 95 % end the profile falls by
    1.96 / SE per unit, so an error of 0.03 moves the end by ~0.015 SE, and 0.1 of
    the half-width (0.196 SE) leaves a margin of ~13.
    """
    from scipy.optimize import brentq, minimize_scalar

    from sknlme.population import NLMEPopulationEstimator

    model = LinearGaussian(n_params=1, sigma=0.3)
    X, _ = model.simulate(40, random_state=2)
    pop = NLMEPopulationEstimator(
        ExactGaussianPosterior(model).fit(), likelihood="importance", random_state=0
    ).fit(X)
    table = pop.profile(["theta0"])

    def exact(mean, log_var):
        return model.marginal_loglik(X, np.array([mean]), np.exp([[log_var]])).sum()

    def profile(mean):
        return -minimize_scalar(lambda v: -exact(mean, v), bounds=(-8, 4), method="bounded").fun

    best = minimize_scalar(lambda m: -profile(m), bounds=(-3, 3), method="bounded")
    drop = 0.5 * 3.841458820694124  # chi2_1(0.95) / 2
    lo = brentq(lambda m: profile(m) - (-best.fun - drop), best.x - 3, best.x)
    hi = brentq(lambda m: profile(m) - (-best.fun - drop), best.x, best.x + 3)
    half = 0.5 * (hi - lo)
    assert table.lower[0] == pytest.approx(lo, abs=0.1 * half)
    assert table.upper[0] == pytest.approx(hi, abs=0.1 * half)


def test_taylor_mixed_derivative_has_no_first_order_error():
    """Third-order terms x_j^2 x_m, x_j x_m^2 leave the mixed derivative (0 at 0) alone.

    The one-sided difference (f(++) - f(+0) - f(0+) + f0) / (hj hm) returns
    ``hj + hm`` here: its O(h) error made log ke's and log sigma's Wald SEs 1.10x
    the exact ones on the coverage design (issue 14).
    """
    steps = np.array([0.05, 0.2])
    x = taylor_shifts(2, steps)
    values = x[:, 0] ** 2 * x[:, 1] + x[:, 0] * x[:, 1] ** 2 + 3 * x[:, 0] * x[:, 1]
    _, hess = taylor_coefficients(values[:, None, None], steps)
    np.testing.assert_allclose(hess[0, 0], [[0.0, 3.0], [3.0, 0.0]], atol=1e-12)


def _decay(phi, t):
    return np.exp(phi[:, :1] - np.exp(phi[:, 1:2]) * t)


_ADDITIVE_MODELS = {
    "oral": lambda: OneCompartmentOral(),
    "mrna": lambda: MRNATransfection(),
    "compartmental": lambda: LinearCompartmental(2, "oral"),
    "function": lambda: FunctionModel(
        _decay, ["log_y0", "log_k"], [0.0, -1.0, -2.0], [0.5, 0.5, 0.1], np.linspace(0, 5, 6)
    ),
}


@pytest.mark.parametrize("name", sorted(_ADDITIVE_MODELS))
@settings(max_examples=5, deadline=None)
@given(st.integers(0, 2**16), st.floats(-1.0, 1.0))
def test_declared_additive_error_has_the_gaussian_form_in_its_log_sd(name, seed, delta):
    """The contract of ``additive_log_sd``, checked on each model that declares it: the
    log-likelihood at ``s0 + delta`` is ``q exp(-2 delta) - m (s0 + delta + log(2 pi)/2)``
    with ``q`` read off its value at ``s0`` (to rounding: values of a few hundred)."""
    model = _ADDITIVE_MODELS[name]()
    X, _ = model.simulate(4, random_state=seed % 1000)
    padded = model.prepare(X).padded
    j, m = additive_log_sd(model, padded)
    phi = model.sample_prior(12, random_state=seed).reshape(4, 3, -1)
    l0 = model.log_likelihood_padded(phi, padded)
    shifted = phi.copy()
    shifted[..., j] += delta
    s0 = phi[..., j]
    q = l0 + m[:, None] * (s0 + 0.5 * np.log(2 * np.pi))
    expected = q * np.exp(-2 * delta) - m[:, None] * (s0 + delta + 0.5 * np.log(2 * np.pi))
    got = model.log_likelihood_padded(shifted, padded)
    ok = np.isfinite(expected)
    np.testing.assert_allclose(got[ok], expected[ok], rtol=1e-9, atol=1e-8)


def test_additive_log_sd_is_declined_where_the_form_breaks():
    """Proportional error, a model that does not declare it, censored values, a
    subclass with its own likelihood."""
    model = OneCompartmentOral(error="proportional")
    X, _ = model.simulate(2, random_state=0)
    assert additive_log_sd(model, model.prepare(X).padded) is None
    lin = LinearGaussian(n_params=1, sigma=0.3)
    X, _ = lin.simulate(2, random_state=0)
    assert additive_log_sd(lin, lin.prepare(X).padded) is None
    comp = LinearCompartmental(1, "oral")
    X, _ = comp.simulate(2, random_state=0)
    padded = comp.prepare(X).padded
    assert additive_log_sd(comp, padded) is not None
    padded.censored[0, 1] = True  # a BLQ value: an M3 term
    assert additive_log_sd(comp, padded) is None

    class OwnLikelihood(OneCompartmentOral):  # inherits the flag, not the form
        def _log_likelihood(self, phi, padded, covariates):
            return super()._log_likelihood(phi, padded, covariates) + 1.0

    own = OwnLikelihood()
    X, _ = own.simulate(2, random_state=0)
    assert additive_log_sd(own, own.prepare(X).padded) is None


def test_analytic_log_sd_coefficients_match_the_finite_differences(oral, monkeypatch):
    """The surrogate's log-sigma coefficients from the centre's values (one likelihood
    pass) against the central differences of step h = 0.01 it took before (three passes).

    In log sigma each draw's log-likelihood is ``q exp(-2 s)`` plus a linear term, so its
    k-th derivative (k >= 2) is ``(-2)^k q``: the central first difference errs by
    ``h^2 |l3| / 6 = h^2 8 |q| / 6``, the second by ``h^2 |l4| / 12 = h^2 16 |q| / 12``
    (next terms ~h^4, a 1.1 margin covers them), with ``q = H / 4`` exactly."""
    obj, x = oral
    analytic = FixedProposalSurrogate(obj, x)
    monkeypatch.setattr(surrogate_module, "_log_sd_position", lambda objective, fe: None)
    numeric = FixedProposalSurrogate(obj, x)
    assert obj.fe.tolist() == [3]  # log sigma is the only fixed parameter
    q = np.abs(analytic._H[..., 0, 0]) / 4
    h2 = 0.01**2
    assert np.all(np.abs(analytic._a[..., 0] - numeric._a[..., 0]) <= 1.1 * h2 * 8 * q / 6)
    assert np.all(np.abs(analytic._H[..., 0, 0] - numeric._H[..., 0, 0]) <= 1.1 * h2 * 16 * q / 12)
    # away from the centre each log weight moves by at most |da| d + |dH| d^2 / 2 for a
    # step d in log sigma, so each individual's log-likelihood term by its largest such
    d = 0.1
    y = x.copy()
    y[obj.x_names.index("log_sigma")] += d
    da = np.abs(analytic._a[..., 0] - numeric._a[..., 0])
    dH = np.abs(analytic._H[..., 0, 0] - numeric._H[..., 0, 0])
    bound = np.sum(np.max(da * d + dH * d**2 / 2, axis=1))
    assert 0 < abs(analytic(y) - numeric(y)) <= bound


def test_fixed_point_moves_the_mean_of_a_collapsed_random_effect():
    """A random effect of negligible variance is expanded as a fixed parameter in the
    re-centred surrogates: held at its draws its mean could not move (the population
    density is a spike there), and the iteration stopped where it started.

    theta1 has no spread between the 40 individuals; started 0.3 (about 6 of its SEs,
    0.3 / sqrt(40) = 0.047) from the truth with its variance at 1e-9, the fixed point
    reaches the exact maximum-likelihood mean within 0.2 SE (the objective's MC error
    with 400 draws); before, it ended 0.24 from it, about where it started."""
    from scipy.optimize import minimize as sp_minimize

    model = LinearGaussian(n_params=2, sigma=0.3)
    rng = np.random.default_rng(11)
    phi = np.column_stack([0.5 + 0.6 * rng.standard_normal(40), np.full(40, -0.2)])
    X, _ = model.simulate(phi=phi, random_state=12)
    draws = ExactGaussianPosterior(model).fit().sample(X, 50, random_state=0)
    base = PopulationObjective(draws, np.zeros(draws.shape[:2]), ["theta0", "theta1"])
    obj = ImportanceObjective(base, model, X, 400, random_state=1)
    x0 = obj.pack(beta=[0.5, 0.1], cov=np.diag([0.36, 1e-9]))
    lb, ub = obj.bounds
    res = minimize_fixed_proposal(obj, lb, ub, x0)

    def exact(v):  # theta1's variance held at its floor: only the means and var0 free
        cov = np.diag([np.exp(v[2]), 1e-9])
        return -model.marginal_loglik(X, v[:2], cov).sum()

    ml = sp_minimize(exact, [0.5, -0.2, np.log(0.36)], method="Nelder-Mead").x
    beta = obj.layout.factors(res.x)[0]
    se = 0.3 / np.sqrt(40)
    assert abs(beta[1] - ml[1]) < 0.2 * se, (beta, ml)
