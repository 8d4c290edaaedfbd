"""Saving and loading amortized posteriors (one zip file; also pickling).

A file is a zip archive holding ``posterior.json`` (format version, package
versions, estimator parameters, model class and constructor arguments,
encoder statistics, fitted attributes) and ``weights.npz`` (every network
variable, keyed by position and path). Pickling uses the same content with the
model pickled natively.
"""

from __future__ import annotations

import importlib
import inspect
import io
import json
import warnings
import zipfile
from importlib.metadata import PackageNotFoundError, version

import numpy as np

FORMAT = "sknlme-amortized-posterior"
FORMAT_VERSION = 1
_FITTED = ("set_size_", "n_simulations_", "history_", "training_time_")
_NOT_SAVED = ("model", "callbacks")


def _versions():
    out = {}
    for pkg in ("sknlme", "bayesflow", "keras", "jax"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:  # pragma: no cover
            out[pkg] = None
    return out


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def model_config(model):
    """``{"class": "module:QualName", "config": constructor arguments}`` of a model.

    Uses ``model.get_config()`` when the model has one, otherwise reads the
    attributes named like the constructor's arguments (scikit-learn style).
    """
    cls = type(model)
    if callable(getattr(model, "get_config", None)):
        config = model.get_config()
    else:
        config = {}
        for name, par in inspect.signature(cls.__init__).parameters.items():
            if name == "self" or par.kind in (par.VAR_POSITIONAL, par.VAR_KEYWORD):
                continue
            if not hasattr(model, name):
                raise TypeError(
                    f"cannot save model {cls.__name__}: constructor argument {name!r} is not "
                    "stored as an attribute; give the model a get_config() method"
                )
            config[name] = getattr(model, name)
    config = _jsonable(config)
    try:
        json.dumps(config)
    except TypeError as exc:
        raise TypeError(f"cannot save model {cls.__name__}'s arguments: {exc}") from None
    return {"class": f"{cls.__module__}:{cls.__qualname__}", "config": config} | prior_spec(model)


def prior_spec(model):
    """Parameter names and training prior of a model, as saved with a posterior."""
    return {
        "param_names": list(model.param_names),
        "prior_mean": np.asarray(model.prior_mean).tolist(),
        "prior_cov": np.asarray(model.prior_cov).tolist(),
    }


def check_prior(model, spec, what):
    """Raise when ``model``'s parameters or training prior differ from the saved ``spec``."""
    if (
        list(model.param_names) != spec["param_names"]
        or np.shape(model.prior_mean) != np.shape(spec["prior_mean"])
        or np.shape(model.prior_cov) != np.shape(spec["prior_cov"])
        or not np.allclose(model.prior_mean, spec["prior_mean"])
        or not np.allclose(model.prior_cov, spec["prior_cov"])
    ):
        raise ValueError(
            f"{what} does not match the saved parameters and prior "
            f"(saved: {spec['param_names']}, mean {spec['prior_mean']})"
        )


def build_model(spec):
    """Rebuild a model from :func:`model_config` output and check its prior."""
    module, _, qualname = spec["class"].partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    config = spec["config"]
    model = obj.from_config(config) if hasattr(obj, "from_config") else obj(**config)
    check_prior(model, spec, f"rebuilt model {spec['class']}")
    return model


def _header(post, with_model):
    params = post.get_params(deep=False)
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "versions": _versions(),
        "params": _jsonable({k: v for k, v in params.items() if k not in _NOT_SAVED}),
        "encoder": post.encoder_.to_dict(),
        "fitted": _jsonable({k: getattr(post, k) for k in _FITTED}),
    }
    if with_model:
        try:
            header["model"] = model_config(post.model)
        except TypeError as exc:  # e.g. a FunctionModel holding a Python function
            header["model"] = {"class": None, "reason": str(exc)} | prior_spec(post.model)
    return header


def _to_bytes(post, with_model):
    buf = io.BytesIO()
    weights = io.BytesIO()
    np.savez_compressed(weights, **post._runtime.get_weights())
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("posterior.json", json.dumps(_header(post, with_model)))
        zf.writestr("weights.npz", weights.getvalue())
    return buf.getvalue()


def _from_bytes(data, model=None, source="data"):
    from ._amortized import AmortizedPosterior
    from ._encoding import Encoder
    from ._runtime import NetworkRuntime

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            header = json.loads(zf.read("posterior.json"))
            with np.load(io.BytesIO(zf.read("weights.npz"))) as npz:
                weights = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as exc:
        raise ValueError(
            f"{source} is not a readable sknlme posterior file (corrupted?): {exc}"
        ) from None
    if header.get("format") != FORMAT:
        raise ValueError(f"{source} is not a sknlme posterior file")
    if header.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{source} has format version {header.get('format_version')}; this sknlme reads "
            f"version {FORMAT_VERSION}"
        )
    saved, current = header["versions"], _versions()
    for pkg in ("bayesflow", "keras"):
        if (saved.get(pkg) or "").split(".")[:2] != (current.get(pkg) or "").split(".")[:2]:
            warnings.warn(
                f"{source} was saved with {pkg} {saved.get(pkg)}, running {current.get(pkg)}",
                UserWarning,
                stacklevel=3,
            )
    spec = header.get("model")
    if model is None:
        if spec is None or spec["class"] is None:
            reason = spec["reason"] if spec else "it holds no model"
            raise ValueError(
                f"{source} cannot rebuild its model ({reason}); pass it: "
                "AmortizedPosterior.load(path, model=...)"
            )
        model = build_model(spec)
    elif spec is not None:
        check_prior(model, spec, f"the model passed to load {source} ({model!r})")
    params = dict(header["params"])
    if isinstance(params.get("hidden_units"), list):
        params["hidden_units"] = tuple(params["hidden_units"])
    post = AmortizedPosterior(model, **params)
    for key, value in header["fitted"].items():
        setattr(post, key, value)
    post.encoder_ = Encoder.from_dict(header["encoder"])
    post._check_params()
    post._runtime = NetworkRuntime.build(post, post.encoder_.n_features, post.encoder_.n_conditions)
    post._runtime.set_weights(weights)
    post.estimator_ = post._runtime.estimator
    return post


def save(post, path):
    """Write ``post`` to ``path`` (a zip file)."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(post)
    data = _to_bytes(post, with_model=True)
    with open(path, "wb") as fh:
        fh.write(data)


def load(path, model=None):
    """Read a posterior written by :func:`save` (with ``model`` instead of the saved one)."""
    with open(path, "rb") as fh:
        data = fh.read()
    return _from_bytes(data, model=model, source=str(path))


def getstate(post):
    """Pickle state: parameters, plus the serialised networks when fitted."""
    state = {k: v for k, v in post.__dict__.items() if not k.endswith("_") and k != "_runtime"}
    if hasattr(post, "_runtime"):
        state["_sknlme_posterior_bytes"] = _to_bytes(post, with_model=False)
    return state


def setstate(post, state):
    """Inverse of :func:`getstate`."""
    state = dict(state)
    data = state.pop("_sknlme_posterior_bytes", None)
    post.__dict__.update(state)
    if data is not None:
        loaded = _from_bytes(data, model=state["model"], source="pickled posterior")
        for key in ("estimator_", "encoder_", "_runtime", *_FITTED):
            setattr(post, key, getattr(loaded, key))
        post.callbacks = state.get("callbacks")
