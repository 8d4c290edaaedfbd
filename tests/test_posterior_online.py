"""Online training and presimulated training sets on disk (tiny networks, seconds each)."""

from types import SimpleNamespace

import keras
import numpy as np
import pytest
from sklearn.utils import check_random_state

from sknlme.models import LinearGaussian, OneCompartmentOral
from sknlme.posterior import AmortizedPosterior, load_presimulated, presimulate
from sknlme.posterior._online import OnlineStream
from sknlme.posterior._training import simulate_rounds

TINY = dict(hidden_units=(8,), flow_depth=2, summary_dim=8, batch_size=64, random_state=0)


@pytest.fixture(scope="module")
def model():
    return LinearGaussian(times=[0.0, 0.5, 1.0], n_params=2, sigma=0.5)


def weights(post):
    return post._runtime.get_weights()


def same_weights(a, b):
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)


class Seen(keras.callbacks.Callback):
    """Records the epochs a callback sees (callbacks must keep working online)."""

    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(epoch)


def test_online_reproduces_and_sees_fresh_simulations(model):
    kw = dict(TINY, n_simulations=256, epochs=3, early_stopping=False)
    seen = Seen()
    a = AmortizedPosterior(model, training="online", callbacks=[seen], **kw).fit()
    b = AmortizedPosterior(model, training="online", **kw).fit()
    offline = AmortizedPosterior(model, **kw).fit()
    assert seen.epochs == [0, 1, 2]
    assert same_weights(a, b) and a.history_ == b.history_
    # epoch 1 trains on the same simulations as offline; later epochs on fresh ones
    assert a.history_["loss"][0] == offline.history_["loss"][0]
    assert a.history_["loss"][1] != offline.history_["loss"][1]
    # the validation simulations are drawn once, as offline
    assert a.history_["val_loss"][0] == offline.history_["val_loss"][0]
    assert a.envelope_ == offline.envelope_ and a.n_simulations_ == 256
    c = AmortizedPosterior(model, training="online", **{**kw, "random_state": 1}).fit()
    assert not same_weights(a, c)


def test_online_equals_offline_for_one_epoch(model):
    kw = dict(TINY, n_simulations=256, epochs=1)
    a = AmortizedPosterior(model, training="online", **kw).fit()
    assert same_weights(a, AmortizedPosterior(model, **kw).fit())


def test_online_ragged_designs_keep_the_first_epochs_set_size():
    # OneCompartmentOral draws 10 or 11 observations and one dose per individual
    # (11 elements for 29 % of individuals, 12 for the others)
    model = OneCompartmentOral(error="additive")
    post = AmortizedPosterior(model, training="online", n_simulations=200, epochs=3, **TINY).fit()
    X, _ = model.simulate(5, random_state=3)
    assert post.sample(X, 4, random_state=0).shape == (5, 4, model.n_params)
    assert len(post.history_["loss"]) == 3 and np.isfinite(post.history_["loss"]).all()
    # fresh individuals larger than the first epoch's sets are replaced by ones that fit
    small = SimpleNamespace(model=model, encoder_=post.encoder_, set_size_=11, censoring=None)
    set_x, mask, cond, target = OnlineStream(small, seed=0)(1, 300)
    assert set_x.shape[:2] == (300, 11) and len(cond) == len(target) == 300
    assert mask.sum(1).max() == 11 and np.isfinite(target).all()
    tiny = SimpleNamespace(model=model, encoder_=post.encoder_, set_size_=5, censoring=None)
    with pytest.raises(ValueError, match="fit the first epoch's set size 5"):
        OnlineStream(tiny, seed=0)(1, 10)


def test_presimulated_round_trip_trains_the_same_network(model, tmp_path):
    path = presimulate(model, 300, tmp_path / "sims", random_state=3)
    padded, cov, phi = load_presimulated(path, model)
    # the stored set is exactly what simulation from the same seed gives in memory
    ((p_mem, c_mem, phi_mem),) = simulate_rounds(model, 300, check_random_state(3))
    np.testing.assert_array_equal(phi.to_numpy(), phi_mem)
    np.testing.assert_array_equal(padded.values, p_mem.values)
    np.testing.assert_array_equal(padded.times, p_mem.times)
    assert cov.shape == (300, 0) and list(phi.columns) == list(model.param_names)
    kw = dict(TINY, epochs=2)
    disk = AmortizedPosterior(model, training=path, **kw).fit()
    memory = AmortizedPosterior(model, **kw).fit((p_mem, None), phi_mem)
    assert same_weights(disk, memory) and disk.history_ == memory.history_
    assert disk.envelope_ == memory.envelope_ and disk.n_simulations_ == 300
    # any number of fits read the set; a str path works as a Path does
    again = AmortizedPosterior(model, training=str(path), **kw).fit()
    assert same_weights(disk, again)
    disk.save(tmp_path / "net.zip")  # the path is stored as a string
    loaded = AmortizedPosterior.load(tmp_path / "net.zip")
    assert loaded.training == str(path) and same_weights(disk, loaded)


def test_mismatched_or_missing_sets_are_refused(model, tmp_path):
    path = presimulate(model, 20, tmp_path / "sims", random_state=0)
    wider = LinearGaussian(times=[0.0, 0.5, 1.0], n_params=2, sigma=0.5, prior_cov=[4.0, 4.0])
    with pytest.raises(ValueError, match="does not match the model: its prior_cov"):
        AmortizedPosterior(wider, training=path, **TINY).fit()
    with pytest.raises(ValueError, match="its param_names is \\['theta0', 'theta1'\\]"):
        load_presimulated(path, LinearGaussian(n_params=3))
    with pytest.raises(FileNotFoundError, match="neither 'offline', 'online' nor"):
        AmortizedPosterior(model, training="onlin", **TINY).fit()
    with pytest.raises(FileNotFoundError, match="not a presimulated training set"):
        load_presimulated(tmp_path)
    with pytest.raises(FileExistsError, match="not an empty directory"):
        presimulate(model, 20, path)
    X, phi = model.simulate(20, random_state=0)
    with pytest.raises(ValueError, match="training='online' brings its own"):
        AmortizedPosterior(model, training="online", **TINY).fit(X, phi)
    with pytest.raises(ValueError, match="n_simulations must be positive"):
        presimulate(model, 0, tmp_path / "empty")


def test_presimulated_censoring_is_recorded_and_applied(model, tmp_path):
    path = presimulate(model, 50, tmp_path / "sims", random_state=0, censoring=0.0)
    padded, _, _ = load_presimulated(path, model)
    vm = padded.value_mask()
    assert padded.censored[vm].any() and (padded.values[vm] >= 0.0).all()
