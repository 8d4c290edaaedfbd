"""Saving and loading the plain state of amortized posteriors (one zip file).

A file is a zip archive holding ``posterior.json`` (format version, package
versions, estimator parameters, model class and constructor arguments,
encoder statistics, fitted attributes) and ``weights.npz`` (every network
variable, keyed by position and path). This module reads and writes that
state; :class:`~sknlme.posterior.AmortizedPosterior` builds itself from it.
Pickling uses the same content with the model pickled natively.
"""

from __future__ import annotations

import importlib
import inspect
import io
import json
import warnings
import zipfile
import zlib
from importlib.metadata import PackageNotFoundError, version

import numpy as np

from ..models import prior_from_dict

FORMAT = "sknlme-amortized-posterior"
FORMAT_VERSION = 1
REQUIRED = ("versions", "params", "encoder", "fitted")
ENCODER_KEYS = (
    "n_outputs",
    "n_covariates",
    "t_scale",
    "value_mean",
    "value_sd",
    "amount_mean",
    "amount_sd",
    "cond_mean",
    "cond_sd",
)


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
    A ``design`` individuals table is recorded as None (``"design_omitted"``).
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
    omitted = {}
    if hasattr(config.get("design"), "columns"):
        # a study whose designs the model resamples for training: the saved
        # posterior keeps their range (envelope_); fitting needs no designs
        config = dict(config, design=None)
        omitted = {"design_omitted": True}
    config = _jsonable(config)
    try:
        json.dumps(config)
    except TypeError as exc:
        raise TypeError(f"cannot save model {cls.__name__}'s arguments: {exc}") from None
    spec = {"class": f"{cls.__module__}:{cls.__qualname__}", "config": config}
    return spec | omitted | prior_spec(model)


def prior_spec(model):
    """Parameter names and training prior of a model, as saved with a posterior.

    ``prior_mean``/``prior_cov`` are the prior's moments; ``prior`` (absent in
    files written before priors other than normal, read as normal) its kind and
    parameters.
    """
    prior = getattr(model, "prior", None)
    return {
        "param_names": list(model.param_names),
        "prior_mean": np.asarray(model.prior_mean).tolist(),
        "prior_cov": np.asarray(model.prior_cov).tolist(),
    } | ({} if prior is None or prior.kind == "normal" else {"prior": prior.to_dict()})


def _same_kind(model, spec):
    saved = spec.get("prior", {"kind": "normal"})
    prior = getattr(model, "prior", None)
    if prior is None or prior.kind == "normal":
        return saved["kind"] == "normal"
    mine = prior.to_dict()
    return mine.keys() == saved.keys() and all(
        mine[k] == saved[k] if k == "kind" else np.allclose(mine[k], saved[k]) for k in mine
    )


def check_prior(model, spec, what):
    """Raise when ``model``'s parameters or training prior differ from the saved ``spec``."""
    if (
        list(model.param_names) != spec["param_names"]
        or np.shape(model.prior_mean) != np.shape(spec["prior_mean"])
        or np.shape(model.prior_cov) != np.shape(spec["prior_cov"])
        or not np.allclose(model.prior_mean, spec["prior_mean"])
        or not np.allclose(model.prior_cov, spec["prior_cov"])
        or not _same_kind(model, spec)
    ):
        raise ValueError(
            f"{what} does not match the saved parameters and prior "
            f"(saved: {spec['param_names']}, mean {spec['prior_mean']}, "
            f"prior {spec.get('prior', {'kind': 'normal'})})"
        )


def build_model(spec):
    """Rebuild a model from :func:`model_config` output and check its prior."""
    module, _, qualname = spec["class"].partition(":")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    config = spec["config"]
    model = obj.from_config(config) if hasattr(obj, "from_config") else obj(**config)
    if "prior" in spec:  # the constructor gave a normal prior of the saved moments
        model = model.with_prior(prior_from_dict(spec["prior"]))
    check_prior(model, spec, f"rebuilt model {spec['class']}")
    return model


def make_header(params, encoder, fitted, model=None):
    """The JSON header of a saved posterior.

    Parameters
    ----------
    params : dict
        Estimator parameters (without the model and callbacks).
    encoder : dict
        The encoder state.
    fitted : dict
        Fitted attributes.
    model : Model, default=None
        Recorded by class and arguments (or by its prior when they cannot be
        stored); None records no model (pickling, which keeps the model).
    """
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "versions": _versions(),
        "params": _jsonable(params),
        "encoder": _jsonable(encoder),
        "fitted": _jsonable(fitted),
    }
    if model is not None:
        try:
            header["model"] = model_config(model)
        except TypeError as exc:  # e.g. a FunctionModel holding a Python function
            header["model"] = {"class": None, "reason": str(exc)} | prior_spec(model)
    return header


def to_bytes(header, weights):
    """One zip archive of a header and ``{path: array}`` weights."""
    buf = io.BytesIO()
    packed = io.BytesIO()
    np.savez_compressed(packed, **weights)
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("posterior.json", json.dumps(header))
        zf.writestr("weights.npz", packed.getvalue())
    return buf.getvalue()


def from_bytes(data, source="data"):
    """``(header, weights)`` of :func:`to_bytes` output, with format and version checks."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            header = json.loads(zf.read("posterior.json"))
            with np.load(io.BytesIO(zf.read("weights.npz"))) as npz:
                weights = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, zlib.error, KeyError, ValueError, OSError, EOFError) as exc:
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
    missing = [k for k in REQUIRED if k not in header]
    missing += [f"encoder/{k}" for k in ENCODER_KEYS if k not in header.get("encoder", {})]
    missing += [] if "set_size_" in header.get("fitted", {}) else ["fitted/set_size_"]
    if missing:
        raise ValueError(f"{source} lacks header entries {missing} (corrupted or edited?)")
    bad = [k for k, w in weights.items() if not np.all(np.isfinite(w))]
    if bad:
        raise ValueError(
            f"{source} holds non-finite network weights ({len(bad)} arrays, e.g. {bad[0]}): "
            "the network is broken; retrain it"
        )
    saved, current = header["versions"], _versions()
    for pkg in ("sknlme", "bayesflow", "keras"):
        if (saved.get(pkg) or "").split(".")[:2] != (current.get(pkg) or "").split(".")[:2]:
            warnings.warn(
                f"{source} was saved with {pkg} {saved.get(pkg)}, running {current.get(pkg)}",
                UserWarning,
                stacklevel=3,
            )
    return header, weights


def header_model(header, model=None, source="data"):
    """The model of a header: ``model`` checked against the saved prior, or rebuilt."""
    spec = header.get("model")
    if model is None:
        if spec is None or spec["class"] is None:
            reason = spec["reason"] if spec else "it holds no model"
            raise ValueError(
                f"{source} cannot rebuild its model ({reason}); pass it: "
                "AmortizedPosterior.load(path, model=...)"
            )
        return build_model(spec)
    if spec is not None:
        check_prior(model, spec, f"the model passed to load {source} ({model!r})")
    return model
