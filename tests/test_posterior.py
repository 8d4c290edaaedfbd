"""AmortizedPosterior: scikit-learn conventions, seeding, storage, inputs (tiny networks)."""

import pickle
import warnings

import keras
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from sknlme.data import IndividualRecords, make_individuals
from sknlme.data._padded import Padded
from sknlme.models import LinearGaussian, Model
from sknlme.posterior import AmortizedPosterior

TINY = dict(hidden_units=(16,), flow_depth=2, summary_dim=8, batch_size=64, random_state=0)


@pytest.fixture(scope="module")
def model():
    return LinearGaussian(times=[0.0, 0.25, 0.5, 0.75, 1.0], n_params=2, sigma=0.5)


class CountEpochs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = 0

    def on_epoch_end(self, epoch, logs=None):
        self.epochs += 1


@pytest.fixture(scope="module")
def counter():
    return CountEpochs()


@pytest.fixture(scope="module")
def post(model, counter):
    return AmortizedPosterior(
        model, n_simulations=1000, epochs=3, callbacks=[counter], **TINY
    ).fit()


@pytest.fixture(scope="module")
def X(model):
    return model.simulate(12, random_state=3)[0]


# --------------------------------------------------------------- conventions
def test_sklearn_conventions(model):
    est = AmortizedPosterior(model, epochs=7, hidden_units=(8, 8))
    params = est.get_params()
    assert params["epochs"] == 7 and params["hidden_units"] == (8, 8)
    assert params["model"] is model
    twin = clone(est)
    assert twin is not est and twin.get_params()["epochs"] == 7
    est.set_params(epochs=3)
    assert est.epochs == 3
    assert "AmortizedPosterior(" in repr(est) and "epochs=3" in repr(est)
    X, _ = model.simulate(2, random_state=0)
    with pytest.raises(NotFittedError):
        est.transform(X)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(summary_network="cnn"), "summary_network"),
        (dict(inference_network="maf"), "inference_network"),
        (dict(epochs=0), "epochs"),
        (dict(validation_fraction=1.0), "validation_fraction"),
        (dict(validation_fraction=0.0), "early_stopping"),
    ],
)
def test_bad_params_rejected_in_fit(model, kwargs, match):
    est = AmortizedPosterior(model, **kwargs)  # stored untouched
    with pytest.raises(ValueError, match=match):
        est.fit()


def test_fit_attributes_and_callbacks(post, counter):
    assert post.n_simulations_ == 1000
    assert len(post.history_["loss"]) == len(post.history_["val_loss"]) == counter.epochs == 3
    assert post.history_["loss"][-1] < post.history_["loss"][0]
    assert post.training_time_ > 0


def test_shapes_transform_and_seeding(post, X):
    draws = post.sample(X, 7, random_state=5)
    assert draws.shape == (12, 7, 2) and np.all(np.isfinite(draws))
    assert np.array_equal(draws, post.sample(X, 7, random_state=5))
    assert not np.array_equal(draws, post.sample(X, 7, random_state=6))
    expected = post.sample(X, post.n_samples, random_state=post.random_state)
    assert np.array_equal(post.transform(X), expected)
    # the first individuals' draws do not depend on how many follow (up to float32
    # rounding: other batch shapes may reorder XLA's sums)
    np.testing.assert_allclose(post.sample(X.iloc[:3], 7, random_state=5), draws[:3], atol=1e-5)


def test_log_prob_matches_bayesflow(post, X, model):
    phi = post.sample(X, 5, random_state=1)
    lp = post.log_prob(X, phi)
    assert lp.shape == (12, 5) and lp.dtype == np.float64
    set_x, mask, cond = post._inputs(X)
    std = ((phi - model.prior_mean) / model.prior_std).astype("float32")
    ref = (
        post.estimator_.log_prob(
            {
                "inference_variables": std.reshape(-1, 2),
                "summary_variables": np.repeat(set_x, 5, 0),
                "summary_mask": np.repeat(mask, 5, 0),
                "inference_conditions": np.repeat(cond, 5, 0),
            }
        ).reshape(12, 5)
        - np.log(model.prior_std).sum()
    )
    # float32 network: differences of a few ulp of values ~1
    np.testing.assert_allclose(lp, ref, atol=1e-4)
    with pytest.raises(ValueError, match="shape"):
        post.log_prob(X, phi[:, :, :1])


def test_diagnose(post, model):
    Xv, phiv = model.simulate(40, random_state=9)
    table = post.diagnose(Xv, phiv, n_samples=50)
    assert list(table.index) == ["theta0", "theta1"]
    for col in ("nrmse", "contraction", "ecdf_error", "coverage_0.9"):
        assert np.all(np.isfinite(table[col]))
    assert np.all((table["coverage_0.9"] >= 0) & (table["coverage_0.9"] <= 1))


# ------------------------------------------------------------------- storage
def test_save_load_round_trip(post, X, tmp_path):
    path = tmp_path / "post.zip"
    post.save(path)
    assert path.stat().st_size < 10 * 2**20
    again = AmortizedPosterior.load(path)
    assert again.get_params(deep=False)["epochs"] == post.epochs
    phi = post.sample(X, 6, random_state=2)
    assert np.array_equal(again.sample(X, 6, random_state=2), phi)
    np.testing.assert_array_equal(again.log_prob(X, phi), post.log_prob(X, phi))
    assert again.history_ == post.history_


def _decay(phi, t):
    return np.exp(phi[:, :1] - np.exp(phi[:, 1:2]) * t)


def test_function_model_is_saved_by_prior_and_passed_to_load(tmp_path):
    from sknlme.models import FunctionModel

    def decay(phi, t):  # nested: not importable by name
        return _decay(phi, t)

    def make(prior_mean=(0.0, -1.0, -2.0), func=decay):
        return FunctionModel(func, ["log_y0", "log_k"], prior_mean=list(prior_mean),
                             prior_cov=[0.5, 0.5, 0.1], times=np.linspace(0, 5, 6))  # fmt: skip

    model = make()
    post = AmortizedPosterior(model, n_simulations=300, epochs=1, **TINY).fit()
    path = tmp_path / "fn.zip"
    post.save(path)  # the function cannot be stored: parameters and prior are
    with pytest.raises(ValueError, match=r"defined inside a function.*load\(path, model=\.\.\.\)"):
        AmortizedPosterior.load(path)
    with pytest.raises(ValueError, match="does not match the saved parameters and prior"):
        AmortizedPosterior.load(path, model=make(prior_mean=(0.0, -1.0, -1.0)))
    again = AmortizedPosterior.load(path, model=make())
    X = model.simulate(5, random_state=1)[0]
    np.testing.assert_array_equal(
        again.sample(X, 4, random_state=0), post.sample(X, 4, random_state=0)
    )
    post.set_params(model=make(func=_decay)).save(path)  # a module-level function: by name
    assert AmortizedPosterior.load(path).model.func is _decay


def test_pickle_round_trip(post, X):
    again = pickle.loads(pickle.dumps(post))
    phi = post.sample(X, 6, random_state=2)
    assert np.array_equal(again.sample(X, 6, random_state=2), phi)
    np.testing.assert_array_equal(again.log_prob(X, phi), post.log_prob(X, phi))
    unfitted = pickle.loads(pickle.dumps(clone(post)))
    with pytest.raises(NotFittedError):
        unfitted.sample(X)


def test_corrupted_files_raise(post, tmp_path):
    path = tmp_path / "post.zip"
    post.save(path)
    data = path.read_bytes()
    broken = tmp_path / "broken.zip"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupted"):
        AmortizedPosterior.load(broken)
    text = tmp_path / "text.zip"
    text.write_text("not a posterior")
    with pytest.raises(ValueError, match="corrupted"):
        AmortizedPosterior.load(text)


# ------------------------------------------------------------------- padding
def test_padding_does_not_change_posterior(post, X):
    """A longer individual widens every padded array; others must not change."""
    records = list(X["records"])
    long = IndividualRecords(np.linspace(0, 1, 40), np.zeros(40))
    wider = make_individuals([*records, long], ids=[*X.index, 99])
    phi = post.sample(X, 4, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the long individual is outside the design
        lp_wide = post.log_prob(wider, np.concatenate([phi, phi[:1]]))
    # float32 reductions over longer padded axes may reorder sums: few ulp
    np.testing.assert_allclose(lp_wide[:12], post.log_prob(X, phi), atol=1e-4)


@pytest.mark.parametrize("kind", ["deepset", "set_transformer", "time_series", "conv"])
def test_summary_networks_ignore_padded_elements(kind):
    from sknlme.posterior._networks import build_summary_network

    net = build_summary_network(kind, 4, (8,))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 6)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype="float32")
    out = np.asarray(net(x, mask=mask))
    for extra in (3, 4):  # odd and even lengths (strided networks)
        junk = rng.standard_normal((3, extra, 6)).astype("float32")  # padded rows with garbage
        x2 = np.concatenate([x, junk], axis=1)
        x2[:, :5][mask == 0] = 100.0
        mask2 = np.concatenate([mask, np.zeros((3, extra), "float32")], axis=1)
        np.testing.assert_allclose(np.asarray(net(x2, mask=mask2)), out, atol=1e-5)


# --------------------------------------------------------------- bad inputs
def test_wrong_number_of_outputs_names_individual(post, X):
    records = list(X["records"])
    records[2] = IndividualRecords([0.0, 0.5], np.ones((2, 2)))
    bad = make_individuals(records, ids=X.index)
    with pytest.raises(ValueError, match=rf"individual {X.index.tolist()[2]!r} has 2 outputs"):
        post.sample(bad)


def test_nan_time_names_individual(post, X):
    records = list(X["records"])
    records[1] = IndividualRecords([0.0, np.nan], [1.0, 2.0])
    bad = make_individuals(records, ids=X.index)
    with pytest.raises(ValueError, match=rf"individual {X.index.tolist()[1]!r} has non-finite"):
        post.sample(bad)


def test_outside_training_design_warns(post, X):
    records = list(X["records"])
    records[4] = IndividualRecords([0.0, 5.0, 50.0], [0.1, 0.2, 0.3])
    far = make_individuals(records, ids=X.index)
    i = X.index.tolist()[4]
    with pytest.warns(UserWarning, match=rf"ID {i}: .*last observation time 50 \(trained on 1\)"):
        post.sample(far, 3, random_state=0)
    with pytest.raises(ValueError, match=rf"ID {i}: 3 observations \(trained on 5\)"):
        post.set_params(on_outside="raise").sample(far, 3, random_state=0)
    post.set_params(on_outside="warn")


class Scaled(Model):
    """y = theta * WT * t + noise; needs covariate WT (a tiny model with a covariate)."""

    def __init__(self):
        super().__init__(["theta0", "theta1"], [0.0, 0.0], [1.0, 1.0], covariate_names=["WT"])

    def sample_design(self, n, random_state=None):
        rng = np.random.default_rng(random_state.randint(2**31) if random_state else 0)
        T = 4
        design = Padded(
            np.broadcast_to(np.linspace(0, 1, T), (n, T)).copy(),
            np.full((n, T, 1), np.nan),
            np.ones((n, T), bool),
            np.zeros((n, 1)),
            np.full((n, 1), 2.0),
            np.ones((n, 1), bool),
        )
        return design, pd.DataFrame({"WT": rng.uniform(50, 90, n)})

    def _predict(self, phi, design, covariates):
        wt = covariates["WT"].to_numpy()[:, None] / 70
        return (phi[:, :1] + phi[:, 1:] * wt * design.times)[..., None]

    def _add_noise(self, pred, phi, rng):
        return pred + 0.3 * rng.standard_normal(pred.shape)


def test_presimulated_fit_with_covariates_and_doses():
    m = Scaled()
    Xs, phis = m.simulate(300, random_state=1)
    est = AmortizedPosterior(m, n_simulations=5, epochs=1, **TINY)
    with pytest.raises(ValueError, match="phi_sim"):
        est.fit(Xs)
    with pytest.raises(ValueError, match="shape"):
        est.fit(Xs, phis.to_numpy()[:, :1])
    est.fit(Xs, phis)
    assert est.n_simulations_ == 300
    assert est.encoder_.n_conditions == 1 + 1 + 1  # observed count, dose count, WT
    X, _ = m.simulate(4, random_state=2)
    assert est.sample(X, 3, random_state=0).shape == (4, 3, 2)
    bad = X.copy()
    bad.loc[bad.index[3], "WT"] = np.nan
    with pytest.raises(ValueError, match=rf"individual .*{X.index.tolist()[3]}"):
        est.sample(bad)
    with pytest.raises(ValueError, match="WT"):
        est.sample(X.drop(columns="WT"))


@pytest.mark.parametrize(
    "kwargs", [dict(summary_network=None), dict(inference_network="flow_matching")]
)
def test_other_network_choices(model, X, kwargs):
    est = AmortizedPosterior(model, n_simulations=200, epochs=1, **(TINY | kwargs)).fit()
    draws = est.sample(X, 4, random_state=0)
    assert draws.shape == (12, 4, 2)
    assert np.array_equal(draws, est.sample(X, 4, random_state=0))
    assert np.all(np.isfinite(est.log_prob(X, draws)))
    if kwargs.get("summary_network", "deepset") is None:
        longer = make_individuals([IndividualRecords(np.linspace(0, 1, 9), np.zeros(9))])
        with pytest.raises(ValueError, match="at most 5"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.sample(longer)


def test_draws_beyond_prior_box_are_redrawn_with_warning(post, X):
    narrow = pickle.loads(pickle.dumps(post)).set_params(max_prior_sd=1.0)
    # LinearGaussian prior N(0, 1): about half of the draws fall outside |phi| <= 1
    with pytest.warns(UserWarning, match="redrawn"):
        draws = narrow.sample(X, 50, random_state=0)
    inside = (np.abs(draws) <= 1.0).all(-1)
    assert inside.mean() > 0.95  # 10 rounds of redraws: P(still outside) ~ 0.5**10 each
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.array_equal(draws, narrow.sample(X, 50, random_state=0))
    assert not np.any(np.abs(post.sample(X, 50, random_state=0)) > 8.0)
    # a box no redraw can fill (|phi| <= 0.01: 1 % of N(0, 1) inside): the warning names
    # the individuals left with draws outside it
    tiny = pickle.loads(pickle.dumps(post)).set_params(max_prior_sd=0.01)
    with pytest.warns(UserWarning, match=r"of ID .* remain"):
        tiny.sample(X, 5, random_state=0)
