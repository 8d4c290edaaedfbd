"""The shipped broad one-compartment oral network, without training, reproduces R nlme.

R (``tests/data/theophylline_trans4_nlme.R``, numbers in the JSON beside it): Theoph in
NONMEM TRANS4 parameters, ``C = Dose ka / (V (ka - CL/V)) (e^(-CL/V t) - e^(-ka t))``,
random effects ``pdDiag(lCL + lV + lka)``, ML: log-likelihood -179.32. The network
(``one-compartment-oral-trans4``) was trained on broad designs (1-20 doses of 10-1000 mg,
1-30 samples, steady state, BLQ) in mg, L, h; theophylline comes in mg/kg, so its
scales map onto the training ones (``rescale_units``) and the estimates are per kg.
Tolerances as for the SSfol fit (tests/test_theophylline_nlme.py): fixed effects 0.05
on the log scale, SDs 25 % (lV's SD, 0.13, gets 0.1 absolute: the variance of a small
SD is poorly determined from 12 subjects, R's SE of log SD(lV) is about 0.4), residual
SD 15 %, log-likelihood 2 (nlme's is a linearisation, sknlme's the exact one). Default
settings but for the random effects (nlme's model) and ``random_state``.
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.frozen import FrozenEstimator

from sknlme.datasets import load_theophylline, pretrained
from sknlme.datasets._pretrained import _shipped_file
from sknlme.population import NLMEPopulationEstimator

R = json.loads((Path(__file__).parent / "data" / "theophylline_trans4_nlme.json").read_text())
NAMES = {"lCL": "log_CL", "lV": "log_V1", "lka": "log_ka"}

pytestmark = pytest.mark.skipif(
    not _shipped_file("one-compartment-oral-trans4").is_file(), reason="no shipped network"
)


@pytest.fixture(scope="module")
def fitted():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return NLMEPopulationEstimator(
            FrozenEstimator(pretrained("one-compartment-oral-trans4")),
            random_effects=list(NAMES.values()),
            random_state=0,
        ).fit(load_theophylline())


def test_fixed_effects(fitted):
    assert fitted.likelihood_ == "importance"
    for r_name, name in NAMES.items():
        assert fitted.fixed_effects_[name] == pytest.approx(R["fixed"][r_name], abs=0.05), name


def test_random_effect_sds(fitted):
    for r_name in ("lCL", "lka"):
        assert fitted.random_effects_[NAMES[r_name]] == pytest.approx(R["sd"][r_name], rel=0.25)
    assert fitted.random_effects_["log_V1"] == pytest.approx(R["sd"]["lV"], abs=0.1)


def test_residual_sd_and_loglik(fitted):
    assert np.exp(fitted.fixed_effects_["log_sigma"]) == pytest.approx(R["sigma"], rel=0.15)
    assert fitted.loglik_ == pytest.approx(R["loglik"], abs=2.0)
