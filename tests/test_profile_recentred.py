"""Profiles of the importance likelihood: the re-centred steps and their warnings."""

import copy
import warnings

import numpy as np
import pytest

from sknlme.models import LinearGaussian
from sknlme.population import NLMEPopulationEstimator, profile_fit
from sknlme.population._recentred import RecentredObjective
from sknlme.posterior import ExactGaussianPosterior


@pytest.fixture(scope="module")
def fit():
    model = LinearGaussian(n_params=1, sigma=0.3)
    X, _ = model.simulate(20, random_state=2)
    pop = NLMEPopulationEstimator(
        ExactGaussianPosterior(model).fit(), likelihood="importance", random_state=0
    ).fit(X)
    return pop.result_


def _chosen(fit):
    return next(r for r in fit.optimize_result.optimize_result.list if r.id == fit.chosen_start)


def test_deep_copy_shares_the_moving_surrogate(fit):
    """pyPESTO deep-copies the problem: its line searches must see the moved surrogate."""
    rec = RecentredObjective(fit.objective, fit.x)
    assert copy.deepcopy(rec) is rec


def test_quiet_profile_of_a_converged_fit(fit):
    """The polished fit (MC SE <= 0.1) at its maximum: no warning, ratios at most 1."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        prof = profile_fit(fit, ["theta0"])
    ratios = np.asarray(prof.result.profile_result.list[-1][0].ratio_path)
    assert ratios.max() <= 1.0


def test_profile_rising_above_the_estimate_warns_and_walks(fit):
    """An estimate recorded 1.0 worse than its objective's maximum (a refinement stopped short).

    Every profile step near the estimate then ends below the recorded value:
    they are reported at it (ratio 1), the warning gives the rise (about 1.0 >
    ABOVE_TOL = 0.2), and the walk still reaches the interval's ends, which are
    then wider (thresholds relative to the recorded value) as the warning says.
    """
    chosen = _chosen(fit)
    reference = profile_fit(fit, ["theta0"]).table
    saved = chosen.fval
    chosen.fval = saved + 1.0
    try:
        with pytest.warns(RuntimeWarning, match=r"log-likelihood (0\.99|1\.00) above the estimate"):
            prof = profile_fit(fit, ["theta0"])
    finally:
        chosen.fval = saved
    ratios = np.asarray(prof.result.profile_result.list[-1][0].ratio_path)
    assert ratios.max() == pytest.approx(1.0)
    assert prof.table.lower[0] < reference.lower[0] < reference.upper[0] < prof.table.upper[0]


def test_noisy_objective_warns_naming_individuals(fit):
    """Three draws per individual: the MC SE at the estimate passes 0.5 (20 terms)."""
    noisy = copy.copy(fit)
    noisy.objective = fit.objective.with_draws(3, random_state=0)
    with pytest.warns(RuntimeWarning, match=r"Monte-Carlo SE at the estimate is .* with 3 draws"):
        profile_fit(noisy, ["theta0"])
