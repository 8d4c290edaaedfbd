"""Training envelope, safe standardisation and refusal of broken networks or files."""

import io
import json
import warnings
import zipfile

import keras
import numpy as np
import pytest

from sknlme.data import IndividualRecords, make_individuals
from sknlme.datasets import load_theophylline, pretrained
from sknlme.models import LinearGaussian, OneCompartmentOral
from sknlme.posterior import AmortizedPosterior
from sknlme.posterior._envelope import CHECKS

TINY = dict(hidden_units=(8,), flow_depth=2, summary_dim=8, batch_size=64, random_state=0)


@pytest.fixture(scope="module")
def shipped():
    return pretrained("one-compartment-oral")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    model = LinearGaussian(times=[0.0, 0.5, 1.0], n_params=2, sigma=0.5)
    post = AmortizedPosterior(model, n_simulations=200, epochs=1, **TINY).fit()
    path = tmp_path_factory.mktemp("tiny") / "tiny.zip"
    post.save(path)
    return post, path


def _thin(X, keep):
    out = X.copy()
    out["records"] = [
        IndividualRecords(r.times[keep], r.values[keep], r.dose_times, r.dose_amounts)
        for r in X["records"]
    ]
    return out


# ------------------------------------------------------------------ envelope
def test_shipped_envelope_passes_its_own_designs(shipped):
    X, _ = shipped.model.simulate(2000, random_state=11)
    table = shipped.check_envelope(X)
    assert list(table.columns) == [*CHECKS, "reason"]
    assert table.index.name == "ID"
    # every bound is a range over 20,000 training draws widened by 10 %: a fresh
    # draw is beyond a range's end with probability ~1 / 20,001 per bound before the
    # margin; 0.1 % (2 of 2000) already means a bound is too tight
    assert (table["reason"] != "").mean() < 0.001
    assert not shipped.check_envelope(load_theophylline())["reason"].any()


def test_mrna_envelope_passes_its_own_designs():
    post = pretrained("mrna-transfection")
    X, _ = post.model.simulate(1000, random_state=12)
    assert (post.check_envelope(X)["reason"] != "").sum() <= 1
    big = X.copy()
    big["records"] = [IndividualRecords(r.times, r.values * 1000) for r in X["records"]]
    assert post.check_envelope(big)["values"].all()


def test_sparse_theophylline_warns_naming_ids_and_cause(shipped):
    X = _thin(load_theophylline(), [0, 3, 6, 10])
    with pytest.warns(UserWarning, match=r"12 of 12 .*\nID 1: 4 observations \(trained on 10-11\)"):
        draws = shipped.sample(X, 5, random_state=0)
    assert np.isfinite(draws).all()
    with pytest.raises(ValueError, match="ID 1: 4 observations"):
        shipped.set_params(on_outside="raise").sample(X, 5)
    shipped.set_params(on_outside="warn")


def test_doses_in_mg_and_minutes_are_outside(shipped):
    X = load_theophylline()
    mg, minutes = X.copy(), X.copy()
    mg["records"] = [
        IndividualRecords(r.times, r.values, r.dose_times, r.dose_amounts * wt)
        for r, wt in zip(X["records"], X["WT"], strict=True)
    ]
    minutes["records"] = [
        IndividualRecords(r.times * 60, r.values, r.dose_times * 60, r.dose_amounts)
        for r in X["records"]
    ]
    table = shipped.check_envelope(mg)
    assert table["dose_amounts"].all() and not table["n_observations"].any()
    assert table["reason"].iloc[0].startswith("doses 320 (trained on 3-6)")
    assert shipped.check_envelope(minutes)[["last_time", "spacing"]].all().all()


def test_envelope_is_saved_and_old_files_get_it_from_designs(tiny, tmp_path):
    post, path = tiny
    with zipfile.ZipFile(path) as zf:
        header = json.loads(zf.read("posterior.json"))
        weights = zf.read("weights.npz")
    assert header["envelope"] == post.envelope_
    assert header["envelope"]["n_observations"] == [3, 3]
    del header["envelope"]
    old = tmp_path / "old.zip"
    _write(old, header, weights)
    again = AmortizedPosterior.load(old)
    assert again.envelope_["n_observations"] == [3, 3]
    assert again.envelope_["last_time"] == [1.0, 1.0]


# ----------------------------------------------------- degenerate inputs
def test_single_dose_training_takes_two_doses_finitely():
    model = OneCompartmentOral(error="additive")
    post = AmortizedPosterior(model, n_simulations=300, epochs=1, **TINY).fit()
    assert post.encoder_.state["cond_sd"][1] == 1.0  # the dose count was constant
    r = load_theophylline()["records"].iloc[0]
    two = make_individuals([IndividualRecords(r.times, r.values, [0.0, 12.0], [4.0, 4.0])], ids=[7])
    with pytest.warns(UserWarning, match=r"ID 7: 2 doses \(trained on 1\)"):
        draws = post.sample(two, 20, random_state=0)
    assert np.isfinite(draws).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.abs(post._inputs(two)[2]).max() < 10


def test_shipped_files_keep_their_draws_after_repair(shipped):
    state = shipped.encoder_.state
    assert min(state["cond_sd"]) >= 1e-8  # the saved 1.2e-12 is repaired at load
    X = load_theophylline()
    r = X["records"].iloc[0]
    two = make_individuals([IndividualRecords(r.times, r.values, [0.0, 12.0], [4.0, 4.0])])
    with pytest.warns(UserWarning, match="2 doses"):
        assert np.isfinite(shipped.sample(two, 20, random_state=0)).all()


# ------------------------------------------------------------ broken networks
class PoisonWeights(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        v = self.model.inference_network.trainable_variables[0]
        v.assign(np.full(v.shape, np.nan, dtype="float32"))


def test_non_finite_loss_stops_training():
    model = LinearGaussian(times=[0.0, 0.5, 1.0], n_params=2, sigma=0.5)
    est = AmortizedPosterior(
        model, n_simulations=300, epochs=3, callbacks=[PoisonWeights()], **TINY
    )
    with pytest.raises(ValueError, match="non-finite"):
        est.fit()


def test_failed_simulations_are_reported_and_refused():
    model = LinearGaussian(times=[0.0, 0.5, 1.0], n_params=2, sigma=0.5)
    est = AmortizedPosterior(model, epochs=1, validation_fraction=0.1, **TINY)
    X, phi = model.simulate(400, random_state=0)
    from sknlme.data import to_padded

    padded = to_padded(X)
    values = padded.values.copy()
    values[:2, 0, 0] = np.inf  # 0.5 %: left out with a warning
    with pytest.warns(UserWarning, match=r"2 of 400 simulations \(0.50%\) failed"):
        est.fit(padded.replace(values=values), phi)
    assert est.n_simulations_ == 398
    values[:20, 0, 0] = np.inf  # 5 %
    with pytest.raises(ValueError, match=r"20 of 400 simulations \(5.00%\) failed"):
        est.fit(padded.replace(values=values), phi)


# ----------------------------------------------------------------- files
def _write(path, header, weights_bytes):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("posterior.json", json.dumps(header))
        zf.writestr("weights.npz", weights_bytes)
    path.write_bytes(buf.getvalue())


def _parts(path):
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("posterior.json")), zf.read("weights.npz")


def test_non_finite_weights_refused(tiny, tmp_path):
    header, raw = _parts(tiny[1])
    with np.load(io.BytesIO(raw)) as npz:
        weights = {k: npz[k] for k in npz.files}
    key = sorted(weights)[0]
    weights[key] = np.full_like(weights[key], np.nan)
    packed = io.BytesIO()
    np.savez_compressed(packed, **weights)
    bad = tmp_path / "nan.zip"
    _write(bad, header, packed.getvalue())
    with pytest.raises(ValueError, match=rf"{bad}.*non-finite network weights"):
        AmortizedPosterior.load(bad)


def test_corrupted_member_refused(tiny, tmp_path):
    data = bytearray(tiny[1].read_bytes())
    with zipfile.ZipFile(tiny[1]) as zf:
        info = zf.getinfo("weights.npz")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for i in range(start + 100, start + 400):
        data[i] ^= 0xFF
    bad = tmp_path / "flipped.zip"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"{bad} is not a readable sknlme posterior file"):
        AmortizedPosterior.load(bad)


@pytest.mark.parametrize("path", [("params",), ("encoder", "t_scale"), ("fitted", "set_size_")])
def test_missing_header_key_refused(tiny, tmp_path, path):
    header, raw = _parts(tiny[1])
    target = header
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]
    bad = tmp_path / "missing.zip"
    _write(bad, header, raw)
    with pytest.raises(ValueError, match=rf"{bad} lacks header entries .*{path[-1]}"):
        AmortizedPosterior.load(bad)


def test_other_sknlme_version_warns(tiny, tmp_path):
    header, raw = _parts(tiny[1])
    header["versions"]["sknlme"] = "0.0.1"
    other = tmp_path / "other.zip"
    _write(other, header, raw)
    with pytest.warns(UserWarning, match="saved with sknlme 0.0.1"):
        AmortizedPosterior.load(other)
