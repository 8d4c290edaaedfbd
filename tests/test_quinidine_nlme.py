"""sknlme reproduces R nlme's Quinidine fits (Pinheiro & Bates 2000, section 8.2).

R (``tests/data/quinidine_nlme.R``, numbers in ``tests/data/quinidine_nlme.json``):
``nlme(conc ~ quinModel(Subject, time, conc, dose, interval, lV, lKa, lCl), random =
pdDiag(lV + lCl ~ 1), method = "ML")``, the base model and the covariate model
``lCl ~ glyco + Cr + Weight`` with each patient's first (baseline) covariate values in
both tools (sknlme's covariates are per individual; P&B's vary within patient). nlme
puts the SD of lV at 6.5e-5 (base) and 1.2e-4 (covariates), i.e. at its bound 0: the
same maxima with random = lCl alone (``*_cl``, log-likelihood within 0.02), which
is what is fitted here.

Model: :class:`~sknlme.models.LinearCompartmental` (one compartment, oral: ``log_CL,
log_V1, log_ka`` are nlme's lCl, lV, lKa) with the shipped broad network
``one-compartment-oral-trans4``, no training: it was trained on 1-20 doses, so the
patients with more (up to 40) lie outside its training designs and, with those whose
network proposal is poor, get their exact Laplace fallback (about 120 of 136); the
others keep the network's draws. Estimator settings are the defaults but for the
model structure and ``random_state``.

Tolerances as for theophylline (fixed effects 0.05 on log scale, SD of lCl 25 %,
residual SD 15 %, log-likelihood 2). The log-likelihood of nlme is a linearisation
(Lindstrom-Bates); the exact one, by Gauss-Hermite quadrature over the single random
effect (``bench/quinidine_exact.py``), is the independent check: at R's estimates it is
-496.43 (nlme reports -496.63), and its own maximum lies where sknlme's does.
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.frozen import FrozenEstimator

from bench.quinidine_exact import COVARIATES, covariate_matrix, quadrature_loglik
from sknlme.datasets import load_quinidine, pretrained
from sknlme.datasets._pretrained import _shipped_file
from sknlme.population import NLMEPopulationEstimator

DATA = Path(__file__).parent / "data"
R = json.loads((DATA / "quinidine_nlme.json").read_text())
EXACT = json.loads((DATA / "quinidine_exact.json").read_text())
NAMES = {"lCl": "log_CL", "lV": "log_V1", "lKa": "log_ka"}
# covariate column in R -> in the individuals table
R_COVARIATE = {"glyco0": "GLYCO", "Cr0": "CRCL50", "Weight0": "WT"}
SPEC = {c: {"params": ["log_CL"], "center": ref} for c, ref in COVARIATES.items()}
# two fits of 136 patients: 17-19 s each on 2 quiet cores (with LaplacePosterior
# proposals for all, before the shipped network: about 100 s on a loaded machine)
NETWORK = "one-compartment-oral-trans4"
pytestmark = pytest.mark.skipif(not _shipped_file(NETWORK).is_file(), reason="no shipped network")


def _fit(covariates):
    X = load_quinidine()
    post = pretrained(NETWORK)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return X, NLMEPopulationEstimator(
            FrozenEstimator(post),
            random_effects=["log_CL"],
            covariates=covariates,
            random_state=0,
        ).fit(X)


def _r_fixed(key):
    """R's fixed effects by sknlme name, the intercept moved to the covariates' centres."""
    fixed = R[key]["fixed"]
    if "lCl" in fixed:
        return {NAMES[k]: v for k, v in fixed.items()}
    out = {"log_CL": fixed["lCl.(Intercept)"], "log_V1": fixed["lV"], "log_ka": fixed["lKa"]}
    for r_name, col in R_COVARIATE.items():
        out["log_CL"] += fixed[f"lCl.{r_name}"] * COVARIATES[col]
    return out


def _r_sd_cl(key):
    """R's SD of lCl (named "lCl.(Intercept)" when lCl has covariates)."""
    sd = R[key]["sd"]
    return sd["lCl"] if "lCl" in sd else sd["lCl.(Intercept)"]


@pytest.fixture(scope="module")
def base():
    return _fit(None)


@pytest.fixture(scope="module")
def covariate():
    return _fit(SPEC)


@pytest.fixture(params=["base", "covariate"])
def case(request):
    X, fit = request.getfixturevalue(request.param)  # only the fit asked for
    return request.param + "_cl", X, fit


# nlme's linearisation is off the exact maximum (bench/quinidine_exact.py) by more than
# the tolerance in two places: base lV 5.382 vs 5.454, covariate-model lKa -0.574 vs
# -0.708 (lKa's SE is 0.35: the likelihood is flat there); sknlme is compared with the
# exact maximum for those in test_exact_likelihood_confirms_the_higher_maximum
_NLME_OFF = {("base", "log_V1"), ("covariate", "log_ka")}


@pytest.mark.parametrize(
    "which, name",
    [
        pytest.param(
            w,
            n,
            marks=[pytest.mark.xfail(strict=True, reason="nlme's linearisation")]
            if (w, n) in _NLME_OFF
            else [],
        )
        for w in ("base", "covariate")
        for n in ("log_CL", "log_V1", "log_ka")
    ],
)
def test_fixed_effects(which, name, request):
    _, fit = request.getfixturevalue(which)
    expected = _r_fixed(which + "_cl")[name]
    assert fit.fixed_effects_[name] == pytest.approx(expected, abs=0.05)


def test_covariate_effects(covariate):
    _, fit = covariate
    fixed = R["covariate_cl"]["fixed"]
    se = R["covariate_cl"]["fixed_se"]
    for r_name, col in R_COVARIATE.items():
        # no theophylline tolerance exists for effects in natural units: 0.5 of R's SE
        # (WT 0.002 per kg, GLYCO 0.06 per mg/dL, CRCL50 0.07)
        b = fit.covariate_effects_.loc[col, "log_CL"]
        assert b == pytest.approx(fixed[f"lCl.{r_name}"], abs=0.5 * se[f"lCl.{r_name}"]), col


def test_random_effect_and_residual_sd(case):
    key, _, fit = case
    assert fit.random_effects_["log_CL"] == pytest.approx(_r_sd_cl(key), rel=0.25)
    sigma = np.exp(fit.fixed_effects_["log_sigma"])
    assert sigma == pytest.approx(R[key]["sigma"], rel=0.15)


def test_loglik_comparable_with_nlme(case):
    key, _, fit = case
    assert fit.loglik_ == pytest.approx(R[key]["loglik"], abs=2.0)
    assert fit.n_observations_ == R[key]["nobs"] == 361
    k = R[key]["df"]  # nlme's count: fixed effects, the variance and sigma
    assert fit.aic_ == pytest.approx(2 * k - 2 * fit.loglik_)


def _exact_at(X, fixed, sd, sigma, effects=None):
    log_cl = np.full(len(X), fixed["log_CL"])
    if effects is not None:
        log_cl = log_cl + covariate_matrix(X) @ np.array([effects[c] for c in COVARIATES])
    return quadrature_loglik(X, log_cl, fixed["log_V1"], fixed["log_ka"], sd, sigma)


def test_exact_likelihood_confirms_the_higher_maximum(case):
    """Quadrature, independent of both tools: sknlme's loglik is exact, and higher than R's."""
    key, X, fit = case
    fe = fit.fixed_effects_
    effects = None
    if key == "covariate_cl":
        effects = {c: fit.covariate_effects_.loc[c, "log_CL"] for c in COVARIATES}
    ours = _exact_at(X, fe, fit.random_effects_["log_CL"], np.exp(fe["log_sigma"]), effects)
    # the importance estimate within 4 of its Monte-Carlo SEs (and the quadrature's 0.002)
    assert fit.loglik_ == pytest.approx(ours, abs=4 * fit.loglik_mc_se_ + 0.002)
    r_effects = None
    if key == "covariate_cl":
        fixed = R[key]["fixed"]
        r_effects = {col: fixed[f"lCl.{r}"] for r, col in R_COVARIATE.items()}
    r_exact = _exact_at(X, _r_fixed(key), _r_sd_cl(key), R[key]["sigma"], r_effects)
    assert ours > r_exact
    # the exact maximum (Nelder-Mead on the quadrature): sknlme is within the
    # theophylline tolerances of it, and its log-likelihood within 0.1
    exact = EXACT[key]
    for name in ("log_CL", "log_V1", "log_ka"):
        assert fe[name] == pytest.approx(exact[name], abs=0.05), name
    assert ours == pytest.approx(exact["loglik"], abs=0.1)
