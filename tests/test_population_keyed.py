"""Hyperparameter constraints, error parameters, feature names, and per-individual keying.

``predict`` and ``score_samples`` of an individual depend only on the fit, the
seed and its ID: a subset or a permutation of the rows gives the same rows of
the full-table result, bit for bit (posterior draws and importance proposals
are keyed by ID).
"""

import warnings

import numpy as np
import pytest
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import InvalidParameterError

from sknlme.models import LinearGaussian, OneCompartmentOral
from sknlme.population import NLMEPopulationEstimator
from sknlme.posterior import ExactGaussianPosterior


@pytest.fixture(scope="module")
def data():
    model = LinearGaussian(n_params=2, sigma=0.3)
    rng = np.random.default_rng(2)
    phi = np.array([0.5, -0.5]) + 0.5 * rng.standard_normal((25, 2))
    X, _ = model.simulate(phi=phi, random_state=3)
    X.insert(0, "WT", rng.normal(0.0, 1.0, len(X)))
    return model, X


@pytest.mark.parametrize(
    "params",
    [
        {"n_jobs": "two"},
        {"verbose": "x"},
        {"bounds": [1, 2]},
        {"n_starts": True},
        {"n_samples": 2.7},
        {"variance_floor": 0.0},
        {"covariance": 3},
        {"optimizer": "lbfgs"},
    ],
)
def test_invalid_hyperparameters_raise_at_fit(data, params):
    model, X = data
    est = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), **params)
    with pytest.raises(InvalidParameterError, match="parameter of NLMEPopulationEstimator"):
        est.fit(X)


@pytest.mark.parametrize("likelihood", ["amortized", "importance"])
@pytest.mark.parametrize("cov_scale", [1.0, 1.5])
def test_predict_and_score_samples_keyed_by_individual(data, likelihood, cov_scale):
    model, X = data
    post = ExactGaussianPosterior(model, cov_scale=cov_scale).fit()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pop = NLMEPopulationEstimator(
            post,
            covariates={"WT": ["theta0"]},
            likelihood=likelihood,
            n_samples=40,
            n_starts=1,
            random_state=0,
        ).fit(X)
    full_pred = pop.predict(X).to_numpy()
    full_ll = pop.score_samples(X)
    assert full_ll.shape == (len(X),) and np.all(np.isfinite(full_ll))
    assert pop.score(X) == np.mean(full_ll)
    rng = np.random.default_rng(0)
    for rows in ([6], [3, 17, 4], rng.permutation(len(X))):
        part = X.iloc[rows]
        assert np.array_equal(pop.predict(part).to_numpy(), full_pred[rows])
        assert np.array_equal(pop.score_samples(part), full_ll[rows])


def test_feature_names_checked_at_score_and_predict(data):
    model, X = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pop = NLMEPopulationEstimator(
            ExactGaussianPosterior(model).fit(),
            likelihood="amortized",
            n_samples=20,
            n_starts=1,
            random_state=0,
        ).fit(X)
    assert list(pop.feature_names_in_) == ["WT", "records"]
    for bad in (X[["records", "WT"]], X[["records"]], X.assign(AGE=1.0)):
        with pytest.raises(ValueError, match="feature names"):
            pop.predict(bad)
        with pytest.raises(ValueError, match="feature names"):
            pop.score(bad)


class _PriorPosterior(BaseEstimator):
    """Draws from the model's prior, keyed by row (enough to fit the layout)."""

    def __init__(self, model):
        self.model = model

    def fit(self, X=None, y=None):
        self.fitted_ = True
        return self

    def sample(self, X, n_samples, random_state=None):
        rng = np.random.default_rng(random_state)
        cov = np.asarray(self.model.prior_cov)
        return rng.multivariate_normal(self.model.prior_mean, cov, size=(len(X), n_samples))

    def log_prob(self, X, phi):  # pragma: no cover - not used by the population fit
        raise NotImplementedError


def test_error_parameters_get_no_random_effect_by_default():
    model = OneCompartmentOral()
    assert model.error_params == ("log_sigma",)
    X, _ = model.simulate(12, random_state=0)
    post = _PriorPosterior(model).fit()
    kw = dict(n_samples=20, n_starts=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pop = NLMEPopulationEstimator(post, **kw).fit(X)
        every = NLMEPopulationEstimator(post, random_effects=list(model.param_names), **kw).fit(X)
    assert list(pop.random_effects_.index) == ["log_ke", "log_ka", "log_Cl"]
    assert "log_var(log_sigma)" not in pop.x_names_
    assert pop.covariance_.loc["log_sigma", "log_sigma"] == pytest.approx(pop.variance_floor)
    assert "log_var(log_sigma)" in every.x_names_
