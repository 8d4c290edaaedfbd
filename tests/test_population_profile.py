"""Profile likelihoods on a two-parameter population with a closed-form likelihood.

One-parameter ``LinearGaussian`` (``y_ij = phi_i + sigma eps_ij``): the
population parameters are ``theta0`` (mean) and ``log_var(theta0)``. The
closed-form marginal likelihood gives the reference profile intervals.
"""

import warnings

import matplotlib
import numpy as np
import pytest
from scipy.optimize import brentq, minimize_scalar
from scipy.stats import chi2

from sknlme.models import LinearGaussian
from sknlme.plotting import plot_profiles
from sknlme.population import NLMEPopulationEstimator
from sknlme.posterior import ExactGaussianPosterior

matplotlib.use("Agg")

MEAN, SD = 0.7, 0.5
THRESHOLD = chi2.ppf(0.95, df=1)


@pytest.fixture(scope="module")
def setup():
    model = LinearGaussian(times=[0.0, 0.5, 1.0], n_params=1, sigma=0.3)
    rng = np.random.default_rng(11)
    X, _ = model.simulate(phi=MEAN + SD * rng.standard_normal((60, 1)), random_state=12)
    post = ExactGaussianPosterior(model).fit()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pop = NLMEPopulationEstimator(
            post, likelihood="amortized", n_samples=200, n_starts=2, random_state=0
        ).fit(X)
    table = pop.profile()
    return model, X, pop, table


def exact_loglik(model, X, mean, log_var):
    return model.marginal_loglik(X, [mean], [[np.exp(log_var)]]).sum()


def exact_profile_ci(model, X, which):
    """Closed-form likelihood-ratio interval of one of (mean, log_var)."""

    def profile(v):
        if which == 0:
            res = minimize_scalar(lambda lv: -exact_loglik(model, X, v, lv), bounds=(-8, 3))
        else:
            res = minimize_scalar(lambda m: -exact_loglik(model, X, m, v), bounds=(-5, 5))
        return -res.fun

    best = minimize_scalar(lambda v: -profile(v), bounds=(-5, 3), method="bounded")
    lmax, xhat = -best.fun, best.x
    gap = lambda v: 2 * (lmax - profile(v)) - THRESHOLD  # noqa: E731
    return xhat, brentq(gap, xhat - 5, xhat), brentq(gap, xhat, xhat + 3)


def test_profile_table(setup):
    _, _, pop, table = setup
    assert list(table.columns) == ["parameter", "estimate", "lower", "upper"]
    assert list(table.parameter) == ["theta0", "log_var(theta0)"]
    assert np.all(table.lower < table.estimate) and np.all(table.estimate < table.upper)
    assert pop.profile_result_.profile_result.list


def test_profile_ci_contains_truth_and_matches_closed_form(setup):
    model, X, pop, table = setup
    truth = [MEAN, np.log(SD**2)]
    for j, row in table.iterrows():
        # 95 % intervals: each misses the truth with 5 % probability (seed fixed)
        assert row.lower < truth[j] < row.upper
        xhat, lo, hi = exact_profile_ci(model, X, j)
        # Monte-Carlo error of the profile (200 draws per individual, ESS >= 20):
        # the curve's location moves by < ~0.22 SE (see test_population_estimator)
        # and its curvature by a few %; an interval end is (estimate +- 1.96 SE), so
        # each end moves by < 0.22 SE + 1.96 SE * 10 % ~ 0.42 SE; SE = width / 3.92.
        se = (hi - lo) / 3.92
        assert abs(row.lower - lo) < 0.42 * se + 1e-9, (row.parameter, row.lower, lo)
        assert abs(row.upper - hi) < 0.42 * se + 1e-9, (row.parameter, row.upper, hi)


def test_profile_agrees_with_curvature(setup):
    _, _, pop, table = setup
    # theta0 is a mean of a Gaussian model: its profile is nearly quadratic, so the
    # interval is close to estimate +- 1.96 SE from the Hessian (within 10 %).
    row = table.iloc[0]
    se = pop.standard_errors_["theta0"]
    assert (row.upper - row.lower) / (2 * 1.959964 * se) == pytest.approx(1.0, rel=0.1)


def test_profile_errors(setup):
    _, _, pop, _ = setup
    with pytest.raises(ValueError, match="not free population parameters"):
        pop.profile(["nope"])
    with pytest.raises(ValueError, match="confidence"):
        pop.profile(confidence=1.5)


def test_plot_profiles(setup):
    _, _, pop, _ = setup
    fig = plot_profiles(pop)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 2
    assert visible[0].get_xlabel() == "theta0"
    fig = plot_profiles(pop.profile_result_, params=["log_var(theta0)"])
    assert len(fig.axes) == 1
    with pytest.raises(ValueError, match="no profile for"):
        plot_profiles(pop, params=["x"])
    fresh = NLMEPopulationEstimator(pop.posterior, likelihood="amortized")
    with pytest.raises(ValueError, match="no profiles to plot"):
        plot_profiles(fresh)


def test_profile_objective_value_calls_skip_gradient(setup):
    """The one problem builder (used by the fit and the profiles) answers value-only
    calls without a gradient."""
    from sknlme.population import make_problem

    _, _, pop, _ = setup
    calls = []

    class Spy:
        def __call__(self, x):
            calls.append("value")
            return pop.objective_(x)

        def value_and_gradient(self, x):
            calls.append("both")
            return pop.objective_.value_and_gradient(x)

    obj = make_problem(Spy(), pop.x_names_, *pop.objective_.bounds).objective
    f = obj(pop.x_)
    assert calls == ["value"] and f == pop.objective_(pop.x_)
    f2, g = obj(pop.x_, sensi_orders=(0, 1))
    assert calls == ["value", "both"] and f2 == f
    np.testing.assert_array_equal(g, pop.objective_.gradient(pop.x_))


def test_profile_default_tolerance_matches_tight_optimizer(setup):
    """The profile's looser stopping rule (about 1e-6 in the objective) moves no
    interval end noticeably against the fit's own tolerance (ftol = 1e-12)."""
    from sknlme.population._multistart import default_optimizer

    _, _, pop, table = setup
    tight = pop.profile(optimizer=default_optimizer())
    np.testing.assert_allclose(table.lower, tight.lower, atol=1e-3)
    np.testing.assert_allclose(table.upper, tight.upper, atol=1e-3)


def test_profile_leaves_callers_options_unchanged(setup):
    import pypesto.profile

    _, _, pop, _ = setup
    options = pypesto.profile.ProfileOptions(ratio_min=0.5)
    pop.profile(pop.x_names_[:1], profile_options=options)
    assert options.ratio_min == 0.5
