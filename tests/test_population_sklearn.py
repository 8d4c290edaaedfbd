"""NLMEPopulationEstimator inside scikit-learn: clone, pickle, pipelines, model selection.

The individuals table (one row per individual, covariates + a ``records``
object column) is not a numeric array, so the generic ``check_estimator`` suite,
which feeds numeric arrays to ``fit``, does not apply as a whole. The checks
that do not fit are run here individually; the two that need data
(``check_dont_overwrite_parameters``, ``check_n_features_in``) are re-done with
an individuals table. Skipped: every check that fits on numeric ``X``/``y``
(dtype, NaN/inf, sample weights, 1-D/2-D ``y``, sparse input, ...), which an
individuals table never is; and ``check_parameters_default_constructible``,
because ``posterior`` is required (like ``estimator`` of meta-estimators).
"""

import pickle
import warnings

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import (
    check_do_not_raise_errors_in_init_or_set_params,
    check_estimator_cloneable,
    check_estimator_repr,
    check_estimators_unfitted,
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_set_params,
)

from sknlme.models import LinearGaussian
from sknlme.population import NLMEPopulationEstimator
from sknlme.posterior import ExactGaussianPosterior

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

FAST = {"n_samples": 30, "n_starts": 1, "random_state": 0, "likelihood": "amortized"}


@pytest.fixture(scope="module")
def data():
    model = LinearGaussian(n_params=2, sigma=0.2)
    rng = np.random.default_rng(3)
    wt = rng.normal(70.0, 10.0, 30)
    phi = np.array([1.0, -0.5]) + np.array([0.4, 0.5]) * rng.standard_normal((30, 2))
    phi[:, 0] += 0.05 * (wt - 70.0)
    X, _ = model.simulate(phi=phi, random_state=4)
    X.insert(0, "WT", wt)
    return model, X


@pytest.fixture
def post(data):
    return ExactGaussianPosterior(data[0]).fit()


@pytest.mark.parametrize(
    "check",
    [
        check_no_attributes_set_in_init,
        check_get_params_invariance,
        check_set_params,
        check_estimator_repr,
        check_estimator_cloneable,
        check_estimators_unfitted,
        check_do_not_raise_errors_in_init_or_set_params,
    ],
)
def test_applicable_estimator_checks(check, post):
    check(
        "NLMEPopulationEstimator",
        NLMEPopulationEstimator(FrozenEstimator(post), likelihood="amortized"),
    )


def test_fit_does_not_change_parameters(data, post):
    _, X = data
    est = NLMEPopulationEstimator(
        post, covariates={"WT": ["theta0"]}, fixed={"theta1": -0.5}, **FAST
    )
    before = joblib.hash(est.get_params())
    X_before = X.copy()
    est.fit(X)
    assert joblib.hash(est.get_params()) == before
    assert X.equals(X_before)
    public = [a for a in vars(est) if not a.startswith("_") and not a.endswith("_")]
    assert sorted(public) == sorted(est.get_params(deep=False))


def test_n_features_in_and_names(data, post):
    _, X = data
    est = NLMEPopulationEstimator(post, **FAST)
    assert not hasattr(est, "n_features_in_")
    est.fit(X)
    assert est.n_features_in_ == 2
    assert list(est.feature_names_in_) == ["WT", "records"]


def test_clone_and_pickle(data, post):
    _, X = data
    est = NLMEPopulationEstimator(FrozenEstimator(post), covariance="cholesky", **FAST).fit(X)
    copy = clone(est)
    assert copy.get_params()["covariance"] == "cholesky"
    assert copy.posterior is est.posterior  # frozen: shared, never refit
    assert not hasattr(copy, "x_")
    with pytest.raises(NotFittedError):
        copy.predict(X)
    loaded = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(loaded.x_, est.x_)
    np.testing.assert_array_equal(loaded.predict(X).to_numpy(), est.predict(X).to_numpy())
    assert loaded.score(X) == est.score(X)
    est.set_params(covariance="diag", n_starts=2)
    assert est.covariance == "diag" and est.n_starts == 2


def _scaling_pipeline(post):
    prep = ColumnTransformer(
        [("wt", StandardScaler(), ["WT"])],
        remainder="passthrough",
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    est = NLMEPopulationEstimator(FrozenEstimator(post), covariates={"WT": ["theta0"]}, **FAST)
    return make_pipeline(prep, est)


def test_pipeline_with_column_transformer(data, post):
    _, X = data
    pipe = _scaling_pipeline(post).fit(X)
    est = pipe[-1]
    # the same fit on a by-hand standardised covariate
    Xs = X.assign(WT=(X["WT"] - X["WT"].mean()) / X["WT"].std(ddof=0))
    ref = clone(est).fit(Xs)
    np.testing.assert_allclose(est.x_, ref.x_, rtol=1e-9, atol=1e-12)
    # the effect is per SD of WT: 0.05 per kg x 10 kg, loosely (30 individuals)
    assert 0.2 < est.covariate_effects_.loc["WT", "theta0"] < 0.8
    assert np.isfinite(pipe.score(X))
    assert pipe.predict(X).shape == (len(X), 2)


def test_grid_search_over_covariance_never_refits_posterior(data, post):
    _, X = data
    assert post.n_fit_calls_ == 1
    pipe = _scaling_pipeline(post)
    search = GridSearchCV(
        pipe,
        {"nlmepopulationestimator__covariance": ["diag", "cholesky"]},
        cv=KFold(3, shuffle=True, random_state=0),
    ).fit(X)
    assert post.n_fit_calls_ == 1
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores)) and scores.shape == (2,)
    assert search.best_params_["nlmepopulationestimator__covariance"] in ("diag", "cholesky")
    assert search.best_estimator_[-1].posterior.estimator is post


def test_cross_val_score_over_individuals(data, post):
    _, X = data
    est = NLMEPopulationEstimator(FrozenEstimator(post), **FAST)
    scores = cross_val_score(est, X, cv=KFold(3))
    assert scores.shape == (3,) and np.all(np.isfinite(scores))
    assert post.n_fit_calls_ == 1


def test_unfrozen_posterior_is_refit_by_clone(data, post):
    # without FrozenEstimator, clone gives an unfitted posterior: a clear error
    _, X = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(NotFittedError):
            clone(NLMEPopulationEstimator(post, **FAST)).fit(X)
