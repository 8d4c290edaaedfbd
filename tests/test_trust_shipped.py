"""Issue 11's acceptance: the shipped network at default settings against exact ML.

Each case changes theophylline the way users' data differ from the network's
training designs (sparse sampling, doses in mg or ug/kg, times in minutes,
repeated doses; ``bench/trust.py`` builds them). The reference is the exact
maximum-likelihood fit of the same data by adaptive Gauss-Hermite quadrature
(7^3 nodes), computed by ``bench/aghq_reference.py``, which shares no code with
the package; its numbers are stored in ``tests/data/aghq_reference.json``. The
AGHQ optimum is checked there: the unit changes give the hours/mg-per-kg fit
shifted by -log 60 and log 1000 exactly, as they must.

Tolerances are the issue's acceptance criteria: fixed effects within 0.05
(log scale), SDs within 25 % (an SD at ~0 in the reference: below 0.1),
residual SD within 10 %, and the log-likelihood within 0.2 of the maximum
(the re-scoring's Monte-Carlo SE is at most 0.03, so 0.2 is > 6 SEs).

With 4 of 11 samples the individual posteriors are far from Gaussian and the
quadrature itself converges slowly: from 7 to 15 to 25 nodes per dimension its
maximum moved from -51.43 to -51.18 to -51.07 and its log ka from 0.98 to 1.03
to 1.07. That case allows the quadrature's last change on top (log ka: 0.05 +
0.04; log-likelihood: 0.2 + 0.11).
"""

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.frozen import FrozenEstimator

from sknlme.datasets import pretrained
from sknlme.population import NLMEPopulationEstimator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from trust import transformed  # noqa: E402

REFERENCE = json.loads((ROOT / "tests" / "data" / "aghq_reference.json").read_text())
STRUCT = ("log_ke", "log_ka", "log_Cl")


@pytest.fixture(scope="module")
def posterior():
    return FrozenEstimator(pretrained("one-compartment-oral"))


@pytest.mark.parametrize(
    "case", ["dose_mg", "dose_ug", "minutes", "repeated", "sparse6", "sparse4"]
)
def test_default_fit_reaches_exact_maximum_likelihood(posterior, case):
    ref = REFERENCE[case]
    X = transformed(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pop = NLMEPopulationEstimator(posterior, random_state=0).fit(X)
    assert pop.likelihood_ == "importance"
    extra = {"log_ka": 0.04} if case == "sparse4" else {}
    for p in STRUCT:
        assert pop.fixed_effects_[p] == pytest.approx(ref[p], abs=0.05 + extra.get(p, 0)), p
        sd, sd_ref = pop.random_effects_[p], ref[f"sd_{p}"]
        if sd_ref < 0.05:
            assert sd < 0.1, p
        else:
            assert sd == pytest.approx(sd_ref, rel=0.25), p
    assert np.exp(pop.fixed_effects_["log_sigma"]) == pytest.approx(ref["sigma"], rel=0.10)
    assert pop.loglik_ == pytest.approx(ref["loglik"], abs=0.2 + 0.11 * (case == "sparse4"))
    assert pop.loglik_mc_se_ <= 0.03 + 1e-12
    if case != "sparse6":  # every individual of these lies outside the training designs
        assert len(pop.fallback_) == len(X)
