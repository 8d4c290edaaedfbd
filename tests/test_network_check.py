"""Amortized fits say when the network's posterior disagrees with the exact one.

The importance ESS of the network's own draws (weights ``p(y|phi) p0(phi) / q(phi|y)``)
is 1 for an exact posterior and collapses for a wrong one; below 10 % of the draws
(a mean about 1.5 posterior SDs off, see ``sknlme/population/_network_check.py``) an
amortized fit warns, naming the individuals.
"""

import re
import warnings

import numpy as np
import pytest
from sklearn.base import BaseEstimator
from sklearn.frozen import FrozenEstimator

from sknlme.datasets import load_theophylline, pretrained
from sknlme.datasets._pretrained import _shipped_file
from sknlme.models import LinearGaussian
from sknlme.population import NLMEPopulationEstimator
from sknlme.posterior import ExactGaussianPosterior

MESSAGE = "network's posterior disagrees with the exact posterior"


def _fit(post, X, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pop = NLMEPopulationEstimator(
            post, likelihood="amortized", n_samples=50, n_starts=2, random_state=0, **kwargs
        ).fit(X)
    return pop, [str(w.message) for w in caught if MESSAGE in str(w.message)]


class Shifted(BaseEstimator):
    """The exact posterior moved by ``shift`` (a biased network), density moved along."""

    def __init__(self, post, shift):
        self.post, self.shift = post, shift

    @property
    def model(self):
        return self.post.model

    def fit(self, X=None, y=None):
        return self

    def __sklearn_is_fitted__(self):
        return True

    def sample(self, X, n_samples=None, random_state=None):
        return self.post.sample(X, n_samples, random_state=random_state) + self.shift

    def log_prob(self, X, phi):
        return self.post.log_prob(X, phi - self.shift)


def test_exact_posterior_passes_and_a_biased_one_is_named():
    model = LinearGaussian(n_params=1, sigma=0.3)
    X, _ = model.simulate(8, random_state=0)
    post = ExactGaussianPosterior(model).fit()
    _, messages = _fit(post, X)
    assert messages == []
    # posterior SD 0.134, so a shift of 0.8 is 6 SDs: the log weights of the draws are
    # linear in their position with SD 6, the largest of 50 carries nearly all the weight
    # (sample ESS about 1 draw, 2 %; at 3 SDs the sample ESS of 50 draws still reached
    # 10 % for 2 of 8 individuals, though the exact fraction is exp(-9))
    _, messages = _fit(Shifted(post, 0.8), X)
    assert len(messages) == 1 and "for 8 of 8 individual(s)" in messages[0]
    assert all(f"{i!r} (" in messages[0] for i in X.index[:8])


@pytest.mark.skipif(
    not _shipped_file("one-compartment-oral-trans4").is_file(), reason="no shipped network"
)
def test_broad_network_on_theophylline_is_flagged():
    """The broad network's amortized theophylline fit is far off (log CL -3.70 vs R's
    -3.21, tests/test_theophylline_broad.py): every subject is named (measured ESS
    fractions 2.0-9.3 %); the default importance fit gets R's numbers."""
    post = FrozenEstimator(pretrained("one-compartment-oral-trans4"))
    _, messages = _fit(post, load_theophylline(), random_effects=["log_CL", "log_V1", "log_ka"])
    assert len(messages) == 1 and "for 12 of 12 individual(s)" in messages[0]
    fractions = [float(v) for v in re.findall(r"\((\d+\.\d)%\)", messages[0])]
    assert len(fractions) == 10 and max(fractions) < 10.0
    assert np.isfinite(fractions).all()
