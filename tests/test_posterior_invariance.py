"""Posterior draws keyed by individual; declared parameter constraints; layering.

An individual's draws depend only on the seed, its ID and its data: the same
individual passed alone, within a subset or in another order gets bit-identical
draws and densities (set sizes and chunk shapes of the networks depend on each
individual alone; see ``sknlme.posterior._runtime``).
"""

import ast
import inspect
import io
import json
import pickle
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError

import sknlme.posterior
from sknlme.data import IndividualRecords, make_individuals
from sknlme.datasets import load_theophylline, pretrained
from sknlme.datasets._pretrained import _shipped_file
from sknlme.models import LinearGaussian
from sknlme.posterior import AmortizedPosterior, ExactGaussianPosterior

TINY = dict(hidden_units=(8,), flow_depth=2, summary_dim=8, n_simulations=300, epochs=1)
PERM = [4, 0, 7, 2, 6, 1, 5, 3]


@pytest.fixture(scope="module")
def model():
    return LinearGaussian(times=[0.0, 0.25, 0.5, 0.75, 1.0], n_params=2, sigma=0.5)


@pytest.fixture(scope="module")
def post(model):
    return AmortizedPosterior(model, random_state=0, **TINY).fit()


@pytest.fixture(scope="module")
def X(model):
    """8 individuals of 5, 3, 9 (beyond training: an own set size) and 1 observations."""
    X = model.simulate(8, random_state=3)[0]
    records = list(X["records"])
    records[1] = IndividualRecords([0.0, 0.5, 1.0], records[1].values[[0, 2, 4]])
    records[2] = IndividualRecords(np.linspace(0, 1, 9), np.linspace(-1, 1, 9))
    records[5] = IndividualRecords([0.5], records[5].values[[2]])
    return make_individuals(records, ids=[f"id{i}" for i in range(8)])


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # outside-training-design warnings
        return fn(*args, **kwargs)


# ---------------------------------------------------------------- invariance
def test_exact_posterior_subset_and_permutation_bit_exact(model):
    X, _ = model.simulate(8, random_state=1)
    post = ExactGaussianPosterior(model, n_samples=20, random_state=4).fit()
    full = post.sample(X, 20, random_state=4)
    assert np.array_equal(post.sample(X.iloc[PERM], 20, random_state=4), full[PERM])
    assert np.array_equal(post.sample(X.iloc[[5]], 20, random_state=4)[0], full[5])
    assert np.array_equal(post.transform(X.iloc[[6, 2]]), full[[6, 2]])


def test_amortized_subset_and_permutation_bit_exact(post, X):
    full = _quiet(post.sample, X, 30, random_state=5)
    assert np.array_equal(_quiet(post.sample, X.iloc[PERM], 30, random_state=5), full[PERM])
    for i in range(len(X)):
        assert np.array_equal(_quiet(post.sample, X.iloc[[i]], 30, random_state=5)[0], full[i])
    lp = _quiet(post.log_prob, X, full)
    assert np.array_equal(_quiet(post.log_prob, X.iloc[PERM], full[PERM]), lp[PERM])
    assert np.array_equal(_quiet(post.log_prob, X.iloc[[2, 5]], full[[2, 5]]), lp[[2, 5]])
    assert not np.array_equal(full, _quiet(post.sample, X, 30, random_state=6))


def test_redraws_are_keyed_too(post, X):
    narrow = pickle.loads(pickle.dumps(post)).set_params(max_prior_sd=1.0)
    full = _quiet(narrow.sample, X, 40, random_state=0)  # about half redrawn, several rounds
    assert np.array_equal(_quiet(narrow.sample, X.iloc[PERM], 40, random_state=0), full[PERM])
    assert np.array_equal(_quiet(narrow.sample, X.iloc[[3]], 40, random_state=0)[0], full[3])


def test_shipped_network_single_individual_equals_study_row():
    post = pretrained("one-compartment-oral")
    X = load_theophylline()
    full = post.sample(X, 50, random_state=0)
    for i in (0, 5, 11):
        assert np.array_equal(post.sample(X.iloc[[i]], 50, random_state=0)[0], full[i])
    assert np.array_equal(post.sample(X.iloc[::-1], 50, random_state=0), full[::-1])


# -------------------------------------------------------------- constraints
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(n_samples=2.7),
        dict(epochs=True),
        dict(summary_network="x"),
        dict(verbose="x"),
        dict(learning_rate=-1),
        dict(validation_fraction=-0.1),
        dict(max_prior_sd=0),
        dict(random_state="seed"),
    ],
)
def test_bad_hyperparameters_raise_invalid_parameter_error(model, kwargs):
    with pytest.raises(InvalidParameterError, match=next(iter(kwargs))):
        AmortizedPosterior(model, **kwargs).fit()


@pytest.mark.parametrize("kwargs", [dict(n_samples=2.7), dict(cov_scale=-1.0), dict(cov_scale="1")])
def test_exact_posterior_bad_hyperparameters(model, kwargs):
    with pytest.raises(InvalidParameterError, match=next(iter(kwargs))):
        ExactGaussianPosterior(model, **kwargs).fit()


def test_custom_checks_remain(model):
    with pytest.raises(TypeError, match="sknlme Model"):
        AmortizedPosterior("not a model").fit()
    with pytest.raises(ValueError, match="flow_matching"):
        AmortizedPosterior(LinearGaussian(n_params=1)).fit()
    with pytest.raises(ValueError, match="hidden_units"):
        AmortizedPosterior(model, hidden_units=(0,)).fit()


# ------------------------------------------------------------------ storage
def test_encoder_owns_parameter_standardisation(post, model):
    state = post.encoder_.to_dict()
    assert state["param_mean"] == list(model.prior_mean)
    assert state["param_sd"] == list(model.prior_std)
    phi = np.array([[[0.3, -1.2]]])
    assert np.allclose(post.encoder_.unstandardize(post.encoder_.standardize(phi)), phi)


def test_files_without_parameter_standardisation_load(post, X, tmp_path):
    """Files saved before the encoder held the prior (the shipped ones) take the model's."""
    path = tmp_path / "new.zip"
    post.save(path)
    with zipfile.ZipFile(path) as zf:
        header = json.loads(zf.read("posterior.json"))
        weights = zf.read("weights.npz")
    for key in ("param_mean", "param_sd"):
        del header["encoder"][key]
    old = tmp_path / "old.zip"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("posterior.json", json.dumps(header))
        zf.writestr("weights.npz", weights)
    old.write_bytes(buf.getvalue())
    again = AmortizedPosterior.load(old)
    assert np.array_equal(
        _quiet(again.sample, X, 5, random_state=1), _quiet(post.sample, X, 5, random_state=1)
    )
    with zipfile.ZipFile(_shipped_file("one-compartment-oral")) as zf:
        assert "param_mean" not in json.loads(zf.read("posterior.json"))["encoder"]


# ----------------------------------------------------------------- layering
POSTERIOR = Path(sknlme.posterior.__file__).parent


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            yield node.level, node.module or "", [a.name for a in node.names]


def test_no_import_circle_and_no_private_names_of_other_packages():
    for path in POSTERIOR.glob("*.py"):
        assert len(path.read_text().splitlines()) < 400, path.name
        for level, module, names in _imports(path):
            if level == 2 or module.startswith("sknlme."):
                parts = module.split(".")
                assert not any(p.startswith("_") for p in parts if p != "_numerics"), (
                    path.name,
                    module,
                )
                assert not any(n.startswith("_") for n in names), (path.name, names)
        assert ".model._" not in path.read_text() and "model_._" not in path.read_text()
    io_imports = [m for _, m, _ in _imports(POSTERIOR / "_io.py")]
    assert not any("_amortized" in m or "_storage" in m for m in io_imports)
    runtime = (POSTERIOR / "_runtime.py").read_text()
    assert "post." not in runtime and "_widths" not in runtime


def test_public_objects_and_methods_have_examples():
    for name in sknlme.posterior.__all__:
        obj = getattr(sknlme.posterior, name)
        assert "Examples" in (obj.__doc__ or ""), name
        if inspect.isclass(obj):
            for meth, fn in inspect.getmembers(obj, inspect.isfunction):
                if not meth.startswith("_") and fn.__module__.startswith("sknlme"):
                    doc = fn.__doc__ or ""
                    assert "Examples" in doc and "posterior._" not in doc, (name, meth)
