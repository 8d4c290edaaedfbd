"""Per-observation residuals, individual table and shrinkage on the linear-Gaussian case.

``LinearGaussian``: ``y_i = A phi_i + sigma eps``, ``phi_i ~ N(m, Omega)``, so
``y_i ~ N(A m, A Omega A^T + sigma^2 I)`` exactly: CWRES is the Cholesky-
standardised marginal residual, and CWRES and NPDE are N(0, 1).
"""

import numpy as np
import pandas as pd
import pytest

from sknlme.models import LinearGaussian
from sknlme.population import (
    NLMEPopulationEstimator,
    individual_table,
    npde_from_simulations,
    observation_table,
    shrinkage,
)
from sknlme.posterior import ExactGaussianPosterior

BETA, SD = np.array([1.0, -0.5]), np.array([0.5, 0.6])


def fitted(n, sigma=0.2, n_params=2, seed=1, wt=False):
    model = LinearGaussian(n_params=n_params, sigma=sigma)
    rng = np.random.default_rng(seed)
    phi = BETA[:n_params] + SD[:n_params] * rng.standard_normal((n, n_params))
    covariates = None
    if wt:
        weight = rng.normal(0.0, 1.0, n)
        phi[:, 0] += 0.8 * weight
        covariates = {"WT": ["theta0"]}
    X, _ = model.simulate(phi=phi, random_state=seed + 1)
    if wt:
        X.insert(0, "WT", weight)
    post = ExactGaussianPosterior(model).fit()
    pop = NLMEPopulationEstimator(
        post, covariates=covariates, n_samples=100, n_starts=2, random_state=0
    ).fit(X)
    return model, X, pop


@pytest.fixture(scope="module")
def case():
    model, X, pop = fitted(200, wt=True)
    return model, X, pop, observation_table(pop, X, n_simulations=1000, random_state=0)


def test_cwres_is_the_closed_form_standardised_residual(case):
    model, X, pop, table = case
    A = model.design_matrix(model.times)
    omega = pop.covariance_.to_numpy()
    S = A @ omega @ A.T + model.sigma**2 * np.eye(len(model.times))
    L = np.linalg.cholesky(S)
    means = pop.fixed_effects_.to_numpy() + np.outer(X["WT"], pop.covariate_effects_.loc["WT"])
    y = np.stack([r.values[:, 0] for r in X["records"]])
    expected = np.linalg.solve(L, (y - means @ A.T).T).T
    np.testing.assert_allclose(table["CWRES"], expected.ravel(), atol=1e-6)
    # linear in phi: the FO (WRES) and FOCE (CWRES) linearisations agree
    np.testing.assert_allclose(table["WRES"], table["CWRES"], atol=1e-6)
    np.testing.assert_allclose(table["PRED"], (means @ A.T).ravel())
    np.testing.assert_allclose(table["RES"], table["DV"] - table["PRED"])
    assert list(table["ID"][:5]) == [X.index[0]] * 5


def test_cwres_and_npde_are_standard_normal(case):
    *_, table = case
    # 1000 independent N(0, 1) values: SE of the mean 0.032, of the SD 0.022;
    # 4 SE bounds, and the estimate replaces the truth (an O(1/sqrt(200)) shift)
    for col in ("CWRES", "NPDE"):
        assert abs(table[col].mean()) < 4 * 0.032 + 0.02, col
        assert abs(table[col].std() - 1) < 4 * 0.022 + 0.02, col
    # NPDE from 1000 simulations against the exact marginal (= CWRES): the
    # empirical pde has SE <= 0.016, about 0.04 on the normal scale at the centre
    central = table["CWRES"].abs() < 1.5
    assert (table["NPDE"] - table["CWRES"])[central].abs().median() < 0.05


def test_npde_is_the_fraction_below_after_decorrelation():
    sims = np.random.default_rng(0).normal(size=(4000, 1)) * 2 + 3
    # one point, 1-D: pde = fraction of simulations below the observation
    obs = np.array([5.0])
    pde = (sims[:, 0] < obs[0]).mean()
    from scipy.stats import norm

    assert npde_from_simulations(obs, sims)[0] == pytest.approx(norm.ppf(pde))
    # beyond every simulation: clipped at 1 - 1/(2K), not infinite
    assert npde_from_simulations(np.array([100.0]), sims)[0] == pytest.approx(
        norm.ppf(1 - 1 / 8000)
    )


def test_individual_table(case):
    model, X, pop, table = case
    ind = individual_table(pop, X)
    assert list(ind.columns) == ["WT", "theta0", "theta1", "ETA(theta0)", "ETA(theta1)"]
    pd.testing.assert_frame_equal(ind[["theta0", "theta1"]], pop.predict(X), check_names=False)
    means = pop.fixed_effects_["theta0"] + pop.covariate_effects_.loc["WT", "theta0"] * X["WT"]
    np.testing.assert_allclose(ind["ETA(theta0)"], ind["theta0"] - means)
    # IPRED is the prediction at the EBE
    A = model.design_matrix(model.times)
    np.testing.assert_allclose(table["IPRED"], (ind[["theta0", "theta1"]] @ A.T).to_numpy().ravel())


@pytest.mark.parametrize("sigma", [0.01, 1.0, 5.0])
def test_eta_shrinkage_against_its_closed_form(sigma):
    """One parameter, T = 5 times: EBE = k (ybar - m), k = w^2 / (w^2 + s^2 / T).

    At the MLE, w^2 + s^2/T is the variance (ddof 0) of ybar, so the SD (ddof 1)
    of the EBEs over omega is (w / sqrt(w^2 + s^2 / T)) * sqrt(n / (n - 1)).
    """
    n, T = 300, 5
    _, X, pop = fitted(n, sigma=sigma, n_params=1)
    w = pop.random_effects_["theta0"]
    expected = 1 - w / np.sqrt(w**2 + sigma**2 / T) * np.sqrt(n / (n - 1))
    table = shrinkage(pop, X)
    # tolerance: importance-sampling noise of the conditional means and the MLE. Each
    # conditional mean carries MC noise of SD ~ omega / sqrt(ESS) (its proposal's
    # spread is ~ omega where the data are uninformative), so SD(EBE) / omega cannot
    # fall below ~ 1 / sqrt(ESS): with the ~800 effective of predict's 1,000 draws, up
    # to 2 / sqrt(800) = 0.07 more than the closed form allows, on top of 0.02
    tol = 0.02 + 2 / np.sqrt(800) if sigma > 1 else 0.02
    assert table.loc["ETA(theta0)", "shrinkage_percent"] / 100 == pytest.approx(expected, abs=tol)
    if sigma == 0.01:  # informative data: no eta-shrinkage; IWRES keep T - 1 of T d.o.f.
        assert abs(table.loc["ETA(theta0)", "shrinkage_percent"]) < 1
        eps = 1 - np.sqrt((T - 1) / T)
        # SD of 1500 residuals: relative SE 1 / sqrt(3000) = 0.018, 4 SE bound
        assert table.loc["EPS", "shrinkage_percent"] / 100 == pytest.approx(eps, abs=0.08)
    if sigma == 5.0:  # little information: most of each EBE shrunk to the mean
        assert table.loc["ETA(theta0)", "shrinkage_percent"] > 50


def test_model_without_error_model_gives_nan_residuals_with_warning():
    from sknlme.population import residual_sd

    class Bare:
        param_names = ("a",)

    with pytest.warns(RuntimeWarning, match="neither an error_model"):
        assert np.isnan(residual_sd(Bare(), np.ones((1, 2, 1)), np.zeros((1, 1)))).all()
