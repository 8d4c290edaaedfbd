"""Fit results (optimisation, profiles, MCMC draws) to one HDF5 file and back."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from sknlme.models import LinearGaussian
from sknlme.population import NLMEPopulationEstimator, load_results, save_results
from sknlme.posterior import ExactGaussianPosterior


@pytest.fixture(scope="module")
def pop():
    model = LinearGaussian(n_params=1, sigma=0.3)
    X, _ = model.simulate(40, random_state=0)
    est = NLMEPopulationEstimator(
        ExactGaussianPosterior(model).fit(),
        n_samples=50,
        n_starts=3,
        likelihood="amortized",
        random_state=0,
    ).fit(X)
    est.profile(["theta0"])
    est.sample_posterior(n_samples=500, random_state=0, min_ess=0)
    return est


def test_round_trip_keeps_starts_profiles_and_draws(pop, tmp_path):
    stored = load_results(save_results(pop, tmp_path / "fit.h5"))
    np.testing.assert_array_equal(stored.x.to_numpy(), pop.x_)
    assert list(stored.x.index) == pop.x_names_
    assert stored.loglik == pop.loglik_ and stored.likelihood == "amortized"
    assert stored.chosen_start == pop.chosen_start_
    starts = pop.optimize_result_.optimize_result
    assert [r.fval for r in stored.result.optimize_result] == [r.fval for r in starts]
    np.testing.assert_array_equal(stored.result.optimize_result[0].x, starts[0].x)
    assert stored.result.problem.x_names == pop.x_names_
    before = pop.profile_result_.profile_result.list[-1][0]
    after = stored.result.profile_result.list[-1][0]
    np.testing.assert_array_equal(after.x_path, before.x_path)
    np.testing.assert_array_equal(after.ratio_path, before.ratio_path)
    np.testing.assert_array_equal(stored.samples.to_numpy(), pop.posterior_.samples.to_numpy())
    assert stored.result.sample_result.burn_in == pop.posterior_.burn_in


def test_fit_result_alone_and_file_errors(pop, tmp_path):
    path = save_results(pop.result_, tmp_path / "opt.h5")  # no profile, no draws
    stored = load_results(path)
    assert stored.samples is None and not stored.result.profile_result.list
    with pytest.raises(FileExistsError, match="overwrite"):
        save_results(pop, path)
    save_results(pop, path, overwrite=True)
    assert load_results(path).samples is not None
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["a"] = 1
    with pytest.raises(ValueError, match="save_results"):
        load_results(tmp_path / "other.h5")
    with pytest.raises(FileNotFoundError, match="missing"):
        load_results(tmp_path / "missing.h5")
    with pytest.raises(TypeError, match="fit"):
        save_results(object(), tmp_path / "x.h5")
