"""Issue 11, "done when" 2: user-defined models at default settings reach the exact ML.

Three small user models (two structural parameters, both with a random effect,
and a residual error), written as a user would: :class:`FunctionModel` for an
exponential decay and an Emax dose-response curve, and a :class:`FunctionModel`
subclass whose designs vary per individual (4 to 7 of 13 sampling times) for a
logistic growth curve with proportional error. For each a tiny network is
trained on the model's own designs through the public API, and the population
is fitted by ``NLMEPopulationEstimator(posterior, random_state=...)`` with
nothing else given.

The reference is the exact maximum-likelihood fit of the same data by adaptive
Gauss-Hermite quadrature, computed (with the data, simulated there) by
``bench/aghq_user_models.py``, which shares no code with the package; its numbers
are in ``tests/data/aghq_user_models.json``.

Tolerances:

- log-likelihood within 0.2 of the AGHQ maximum: the issue's criterion, plus
  the quadrature's own change between its two node counts (0 for decay and emax,
  0.004 for logistic; see the bench script) and minus nothing for Monte-Carlo
  error, which is asserted separately to be small (``loglik_mc_se_``, below);
- refit with another ``random_state`` moves ``loglik_`` by < 0.1: the issue's
  criterion. Two independent re-scorings differ by about sqrt(2) MC SEs, so
  with ``loglik_mc_se_`` <= 0.03 a difference of 0.1 is > 2.3 SDs of that
  difference: a failure means a real instability, not bad luck;
- fixed effects within 0.05 and SDs within 25 %, as in
  ``test_trust_shipped.py`` (the issue's criteria for the shipped network);
  the residual parameter on the log scale within 0.1 (10 %).
"""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.utils import check_random_state

from sknlme.data import IndividualRecords, Padded, make_individuals
from sknlme.models import FunctionModel
from sknlme.population import NLMEPopulationEstimator
from sknlme.posterior import AmortizedPosterior

REFERENCE = json.loads(
    (Path(__file__).resolve().parent / "data" / "aghq_user_models.json").read_text()
)
# tiny network: a second or two of training per case on one core
TINY = dict(hidden_units=(32,), flow_depth=2, summary_dim=8, batch_size=64, epochs=8)


def decay(phi, t):
    return np.exp(phi[:, :1] - np.exp(phi[:, 1:2]) * t)


def emax(phi, x):
    return np.exp(phi[:, :1]) * x / (np.exp(phi[:, 1:2]) + x)


def logistic(phi, t):
    k, r = np.exp(phi[:, :1]), np.exp(phi[:, 1:2])
    return k / (1.0 + (k - 1.0) * np.exp(-r * t))


class SparseLogistic(FunctionModel):
    """Logistic growth, each individual observed at 4 to 7 of the model's times."""

    def sample_design(self, n, random_state=None):
        design, cov = super().sample_design(n)
        rng = check_random_state(random_state)
        T = self.times.size
        keep = np.zeros((n, T), bool)
        for i in range(n):
            keep[i, rng.choice(T, size=rng.randint(4, 8), replace=False)] = True
        return Padded(
            design.times,
            design.values,
            keep,
            design.dose_times,
            design.dose_amounts,
            design.dose_mask,
        ), cov


# priors: broad around the population (about 2 to 3 population SDs or more)
MODELS = {
    "decay": lambda: FunctionModel(
        decay, ["log_y0", "log_k"], [2.0, -0.7, np.log(0.3)], [0.5, 0.8, 0.5],
        times=[0.5, 1.0, 2.0, 3.0, 5.0, 8.0],
    ),
    "emax": lambda: FunctionModel(
        emax, ["log_Emax", "log_ED50"], [4.6, 2.3, np.log(5.0)], [0.3, 1.0, 0.5],
        times=[1.0, 3.0, 10.0, 30.0, 100.0],
    ),
    "logistic": lambda: SparseLogistic(
        logistic, ["log_K", "log_r"], [3.0, -0.2, np.log(0.1)], [0.4, 0.5, 0.5],
        times=np.arange(13.0), error="proportional",
    ),
}  # fmt: skip


def study(case):
    recs = [IndividualRecords(r["times"], r["values"]) for r in REFERENCE[case]["data"]]
    return make_individuals(recs)


@pytest.fixture(scope="module", params=list(MODELS))
def fitted(request):
    case = request.param
    model = MODELS[case]()
    post = AmortizedPosterior(model, n_simulations=2000, random_state=0, **TINY).fit()
    X = study(case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pops = [NLMEPopulationEstimator(post, random_state=s).fit(X) for s in (0, 1)]
    return case, model, pops


def _quadrature_change(ref):
    """The AGHQ optimum's change between the bench script's two node counts."""
    lls = [v["loglik"] for k, v in ref.items() if k.startswith("nodes_")]
    return max(lls) - min(lls)


def test_default_fit_reaches_exact_maximum_likelihood(fitted):
    case, model, (pop, refit) = fitted
    ref = REFERENCE[case]
    mu, log_var, log_sigma = np.split(np.asarray(ref["theta"]), [2, 4])
    names = model.param_names
    assert pop.likelihood_ == "importance"
    assert pop.loglik_mc_se_ <= 0.03 + 1e-12
    assert pop.loglik_ == pytest.approx(ref["loglik"], abs=0.2 + _quadrature_change(ref))
    assert abs(refit.loglik_ - pop.loglik_) < 0.1
    for j, p in enumerate(names[:2]):
        assert pop.fixed_effects_[p] == pytest.approx(mu[j], abs=0.05), p
        assert pop.random_effects_[p] == pytest.approx(np.exp(log_var[j] / 2), rel=0.25), p
    assert pop.fixed_effects_[names[2]] == pytest.approx(log_sigma[0], abs=0.1)
