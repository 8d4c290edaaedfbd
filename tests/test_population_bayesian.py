"""Bayesian population inference: MCMC over the population parameters on the cached draws.

References are exact: the linear-Gaussian model with its exact posterior, so the
population objective is a smooth function whose optimum and curvature the tests
read off directly. Monte-Carlo tolerances come from the chain's own effective
sample size (ESS, pyPESTO's ``n / (1 + tau)``, conservative): the posterior mean
of a parameter has Monte-Carlo SE ``sd / sqrt(ESS)`` and its posterior SD a
relative Monte-Carlo SE ``1 / sqrt(2 ESS)`` (normal draws); the tests allow four
of those (a chance of ~1e-4 per check of a false alarm) plus the named
approximation each comparison makes.
"""

from __future__ import annotations

import warnings

import numpy as np
import pypesto.sample
import pytest
from pypesto.sample import MetropolisSampler

from sknlme.models import LinearGaussian
from sknlme.population import NLMEPopulationEstimator, normal_prior, sample_population
from sknlme.posterior import ExactGaussianPosterior

# true population: theta0 ~ N(2, 1) (the model's prior is the population)
MODEL = LinearGaussian(n_params=1, sigma=0.3, prior_mean=[2.0], prior_cov=[1.0])


def _fit(n, **kwargs):
    X, _ = MODEL.simulate(n, random_state=0)
    return NLMEPopulationEstimator(
        ExactGaussianPosterior(MODEL).fit(),
        n_samples=100,
        n_starts=2,
        likelihood="amortized",  # 0.1 ms per evaluation: a 4000-step chain in ~4 s
        random_state=0,
        **kwargs,
    ).fit(X)


@pytest.fixture(scope="module")
def pop():
    return _fit(400)


@pytest.fixture(scope="module")
def known_variance():
    # the random-effect variance held at its true value: only the mean is free
    return _fit(400, fixed={"log_var(theta0)": 0.0})


def test_flat_prior_posterior_matches_mle_and_standard_errors(pop):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # converged, enough ESS: no warning
        post = pop.sample_posterior(n_samples=4000, random_state=0)
    assert post.converged and 0.1 < post.acceptance_rate < 0.5
    mean, sd, ess = post.samples.mean(), post.samples.std(), post.ess
    se = pop.standard_errors_
    # default prior N(0, 10^2): shifts the mean by about se^2 / 100 * x (< 1e-4 se here).
    # The flat-prior posterior is normal only as N grows: its mean and the mode differ by
    # O(se / sqrt(N)) = 0.05 se at N = 400; allow 0.1 se.
    tol_mean = 4 * sd / np.sqrt(ess) + 0.1 * se
    assert np.all(np.abs(mean - pop.x_) < tol_mean), (mean, pop.x_, tol_mean)
    # the standard errors come from the Hessian on the re-scoring draws, the chain runs on
    # the fit draws: their curvatures differ by a few percent; allow 5 %
    tol_sd = 4 / np.sqrt(2 * ess) + 0.05
    assert np.all(np.abs(sd / se - 1) < tol_sd), (sd, se, tol_sd)
    # the natural scale: SD(theta0) of each draw is exp(log_var / 2)
    np.testing.assert_allclose(
        post.natural["SD(theta0)"], np.exp(post.samples["log_var(theta0)"] / 2)
    )
    table = post.summary()
    row = table.set_index("parameter").loc["SD(theta0)"]
    assert row.kind == "SD" and row.lower < pop.random_effects_["theta0"] < row.upper


def test_strong_prior_moves_the_posterior_as_conjugate_algebra_predicts(known_variance):
    pop = known_variance
    f, x = pop.objective_, float(pop.x_[0])
    # with the variance known the objective is quadratic in the mean (same curvature at
    # two step sizes to 1e-6): likelihood N(x, s^2) with s^2 = 1 / curvature
    curv = [(f([x + h]) - 2 * f([x]) + f([x - h])) / h**2 for h in (0.02, 0.1)]
    assert abs(curv[0] / curv[1] - 1) < 1e-6
    s = 1 / np.sqrt(curv[0])
    # prior N(m0, s0^2) with s0 = s, m0 = x + 4 s: the normal-normal posterior has mean
    # (x / s^2 + m0 / s0^2) / (1 / s^2 + 1 / s0^2) = x + 2 s and SD (1/s^2 + 1/s0^2)^-1/2
    m0, s0 = x + 4 * s, s
    prec = 1 / s**2 + 1 / s0**2
    want_mean, want_sd = (x / s**2 + m0 / s0**2) / prec, prec**-0.5
    post = sample_population(
        pop.result_, prior={"theta0": (m0, s0)}, n_samples=4000, random_state=0
    )
    theta = post.samples["theta0"]
    ess = post.ess["theta0"]
    assert abs(theta.mean() - want_mean) < 4 * want_sd / np.sqrt(ess)  # ~0.16 s; shift: 2 s
    assert abs(theta.std() / want_sd - 1) < 4 / np.sqrt(2 * ess)


def test_pypesto_prior_equals_dict_prior_and_random_state_reproduces(known_variance):
    fit = known_variance.result_
    state = np.random.get_state()  # noqa: NPY002 - the global stream pyPESTO uses
    a = sample_population(fit, {"theta0": (1.0, 0.1)}, n_samples=300, random_state=3, min_ess=0)
    # the caller's global NumPy stream is untouched (pyPESTO draws from it: seeded, restored)
    assert np.random.get_state()[1].tolist() == state[1].tolist()  # noqa: NPY002
    prior = normal_prior(fit.x_names, {"theta0": (1.0, 0.1)})
    b = sample_population(fit, prior, n_samples=300, random_state=3, min_ess=0)
    c = sample_population(fit, prior, n_samples=300, random_state=4, min_ess=0)
    assert a.trace.equals(b.trace)
    assert not a.trace.equals(c.trace)


def test_warns_naming_parameters_with_small_ess(known_variance):
    with pytest.warns(RuntimeWarning, match=r"effective sample size below .*'theta0'"):
        sample_population(known_variance.result_, n_samples=300, random_state=0, min_ess=1e6)


def test_a_stuck_chain_warns_with_zero_ess(known_variance):
    # proposals 1e4 wide all leave the bounds: the chain never moves (its autocorrelation
    # is undefined: ESS 0, not NaN, so the warning fires)
    with pytest.warns(RuntimeWarning, match="effective sample size below 100 for 'theta0' \\(0\\)"):
        post = sample_population(
            known_variance.result_,
            n_samples=200,
            random_state=0,
            sampler=MetropolisSampler({"std": 1e4, "show_progress": False}),
        )
    assert post.acceptance_rate == 0


def test_warns_when_the_geweke_test_fails(known_variance, monkeypatch):
    # pyPESTO's sequential Geweke test almost never fails (a drifting or a stuck chain gets
    # a burn-in); make it report "no burn-in" to check what sknlme then does
    monkeypatch.setattr(
        pypesto.sample, "geweke_test", lambda result, zscore: result.sample_result.trace_x.shape[1]
    )
    with pytest.warns(RuntimeWarning, match="Geweke test found no burn-in"):
        post = sample_population(known_variance.result_, n_samples=200, random_state=0, min_ess=0)
    assert not post.converged and len(post.samples) == 101  # the second half of 201


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"prior": {"nope": (0.0, 1.0)}}, ValueError, "nope"),
        ({"prior": {"theta0": (0.0, -1.0)}}, ValueError, "theta0"),
        ({"prior": {"theta0": 3.0}}, ValueError, "theta0"),
        ({"prior": [0.0, 1.0]}, TypeError, "prior"),
        ({"n_samples": 10}, ValueError, "n_samples"),
        ({"zscore": 0.0}, ValueError, "zscore"),
    ],
)
def test_bad_inputs_name_the_parameter(known_variance, kwargs, error, match):
    with pytest.raises(error, match=match):
        sample_population(known_variance.result_, **kwargs)


def test_chains_to_arviz_rhat_and_conjugate_posterior(known_variance):
    """Four chains, dispersed starts: ArviZ's R-hat ~ 1 and the conjugate posterior.

    Same normal-normal reference as above (prior N(x + 4 s, s^2) on the mean of a
    quadratic log-likelihood N(x, s^2)). For stationary chains split-R-hat^2 - 1 is
    about (chi2_{m-1} / (m-1)) / ESS_per_split_chain (the between-chain variance of
    the split-chain means); with m = 8 split chains chi2_7 / 7 < 4.1 at the 1e-4
    level, so R-hat < sqrt(1 + 4.1 m / ESS_bulk). Mean and SD use ArviZ's bulk ESS
    in the Monte-Carlo tolerances of the module docstring; the SD also gets 5 % for
    pyPESTO's adaptive Metropolis sampler, whose SD ran wide of this conjugate
    posterior by more than its Monte-Carlo error: +2.4 % and +2.0 % (one chain of
    4000, seeds 0 and 1), +8.0 %, +4.4 % (4 x 2000, seeds 0, 1), +4.9 % (4 x 4000),
    Monte-Carlo SEs 1.4 to 3 %.
    """
    import arviz as az

    pop = known_variance
    f, x = pop.objective_, float(pop.x_[0])
    s = 1 / np.sqrt((f([x + 0.05]) - 2 * f([x]) + f([x - 0.05])) / 0.05**2)
    m0, s0 = x + 4 * s, s
    prec = 1 / s**2 + 1 / s0**2
    want_mean, want_sd = (x / s**2 + m0 / s0**2) / prec, prec**-0.5
    post = sample_population(
        pop.result_, prior={"theta0": (m0, s0)}, n_samples=2000, n_chains=4, random_state=0
    )
    idata = post.to_inference_data()
    assert dict(idata.posterior.sizes) == {"chain": 4, "draw": len(post.samples) // 4}
    theta = idata.posterior["theta0"].to_numpy()
    np.testing.assert_array_equal(theta.reshape(-1), post.samples["theta0"].to_numpy())
    assert len({float(t.iloc[0, 0]) for t in post.traces}) == 4  # four different starts
    table = post.summary().set_index("parameter")
    ess = table.loc["theta0", "ess_bulk"]
    assert ess == pytest.approx(float(az.ess(idata, method="bulk")["theta0"]))
    assert 1 - 1e-9 < table.loc["theta0", "r_hat"] < np.sqrt(1 + 4.1 * 8 / ess)
    assert abs(theta.mean() - want_mean) < 4 * want_sd / np.sqrt(ess)
    assert abs(theta.std() / want_sd - 1) < 4 / np.sqrt(2 * ess) + 0.05
    # the log posterior of each draw rides along for ArviZ's plots
    assert idata.sample_stats["lp"].shape == theta.shape
    with pytest.raises(ValueError, match="n_chains"):
        sample_population(pop.result_, n_chains=0)
