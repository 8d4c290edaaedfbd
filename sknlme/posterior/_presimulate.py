"""Presimulated training sets on disk: written once, read by any number of fits.

A set is a directory holding ``simulations.json`` (format, the model's name,
parameter, output and covariate names, training prior, censoring limits and
size) and one NumPy ``.npy`` file per array: the padded records
(``times.npy``, ``values.npy``, ``obs_mask.npy``, the dose arrays,
``censored.npy``; see :class:`sknlme.data.Padded`), ``covariates.npy`` (n,
n_covariates) and ``phi.npy`` (n, n_params, model scale). Arrays are read
memory-mapped, so a set larger than memory is only paged in where training
reads it.
"""

from __future__ import annotations

import json
import os
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state

from ..data import Padded
from ._training import censoring_limits, simulate_rounds, training_designs

FORMAT = "sknlme-simulations-1"
META = "simulations.json"


def _model_record(model):
    return {
        "model": model.name,
        "param_names": list(model.param_names),
        "output_names": list(model.output_names),
        "covariate_names": list(model.covariate_names),
        "prior": type(model.prior).__name__,
        "prior_mean": np.asarray(model.prior_mean, float).tolist(),
        "prior_cov": np.asarray(model.prior_cov, float).tolist(),
    }


def presimulate(model, n_simulations, path, *, random_state=None, censoring=None, verbose=0):
    """Simulate a training set from the model's designs and prior and write it to ``path``.

    Train on it with ``AmortizedPosterior(model, training=path)``, as often as
    needed; read it with :func:`load_presimulated`. The simulations are those
    an offline :meth:`AmortizedPosterior.fit` would draw from a generator
    seeded by ``random_state``.

    Parameters
    ----------
    model : Model
        Simulator, design distribution and training prior.
    n_simulations : int
        Number of individuals.
    path : str or path-like
        A directory to create (it must not exist or be empty).
    random_state : int, RandomState or None, default=None
        Seeds designs, parameters and noise.
    censoring : float or array-like of shape (n_outputs,), default=None
        Lower limits of quantification applied to the simulated values (see
        :class:`AmortizedPosterior`), recorded in the set.
    verbose : int, default=0
        1 shows a progress bar.

    Returns
    -------
    pathlib.Path
        The directory written.

    Examples
    --------
    >>> import tempfile
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import load_presimulated, presimulate
    >>> model = LinearGaussian(n_params=2, sigma=0.5)
    >>> path = presimulate(model, 100, tempfile.mkdtemp() + "/sims", random_state=0)
    >>> padded, covariates, phi = load_presimulated(path, model)
    >>> padded.n_individuals, list(phi.columns)
    (100, ['theta0', 'theta1'])
    """
    n = int(n_simulations)
    if n < 1:
        raise ValueError(f"n_simulations must be positive, got {n_simulations!r}")
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise FileExistsError(f"{path} exists and is not an empty directory")
    limits = censoring_limits(censoring, model.n_outputs)
    chunks = simulate_rounds(model, n, check_random_state(random_state), verbose, limits)
    padded, cov = training_designs(chunks)
    phi = np.concatenate([c[2] for c in chunks])
    path.mkdir(parents=True, exist_ok=True)
    for f in fields(Padded):
        np.save(path / f"{f.name}.npy", np.asarray(getattr(padded, f.name)))
    np.save(path / "covariates.npy", np.asarray(cov, float))
    np.save(path / "phi.npy", phi)
    meta = {
        "format": FORMAT,
        **_model_record(model),
        "censoring": None if limits is None else [None if np.isnan(v) else v for v in limits],
        "n_simulations": n,
        "random_state": random_state if isinstance(random_state, int) else None,
    }
    (path / META).write_text(json.dumps(meta, indent=1))
    return path


def _check_matches(meta, model, path):
    mine = _model_record(model)
    for key, value in mine.items():
        stored = meta.get(key)
        same = (
            stored is not None
            and np.shape(stored) == np.shape(value)
            and np.allclose(stored, value, rtol=1e-12, atol=0)
            if key.startswith("prior_")
            else stored == value
        )
        if not same:
            raise ValueError(
                f"presimulated set {path} does not match the model: its {key} is {stored!r}, "
                f"the model's is {value!r}"
            )


def read_presimulated(path, model=None):
    """``(Padded, covariates ndarray, phi ndarray)`` of a set, checked against ``model``."""
    path = Path(os.fspath(path))
    meta_file = path / META
    if not meta_file.is_file():
        raise FileNotFoundError(
            f"{path} is not a presimulated training set (no {META}; write one with presimulate)"
        )
    meta = json.loads(meta_file.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown format {meta.get('format')!r}, expected {FORMAT!r}")
    if model is not None:
        _check_matches(meta, model, path)

    def load(name):
        return np.load(path / f"{name}.npy", mmap_mode="r")

    padded = Padded(**{f.name: load(f.name) for f in fields(Padded)})
    cov, phi = load("covariates"), np.asarray(load("phi"), float)
    n = padded.n_individuals
    if cov.shape[0] != n or phi.shape[0] != n:
        raise ValueError(
            f"{path}: {n} individuals but covariates.npy has {cov.shape[0]} rows and phi.npy "
            f"{phi.shape[0]}: incomplete or corrupted set"
        )
    return padded, cov, phi


def load_presimulated(path, model=None):
    """Read a training set written by :func:`presimulate`.

    Parameters
    ----------
    path : str or path-like
        The set's directory.
    model : Model, default=None
        When given, the set must have been simulated from a model with the
        same name, parameter, output and covariate names and training prior
        (a ValueError names the first difference).

    Returns
    -------
    padded : Padded
        The simulated records (arrays memory-mapped from disk).
    covariates : DataFrame of shape (n, n_covariates)
    phi : DataFrame of shape (n, n_params)
        True parameters, model scale, columns named by the model's parameters.

    Examples
    --------
    >>> import tempfile
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import load_presimulated, presimulate
    >>> path = presimulate(LinearGaussian(n_params=2), 10, tempfile.mkdtemp(), random_state=0)
    >>> load_presimulated(path, LinearGaussian(n_params=3))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: presimulated set ... does not match the model: its param_names is ...
    """
    padded, cov, phi = read_presimulated(path, model)
    meta = json.loads((Path(os.fspath(path)) / META).read_text())
    covariates = pd.DataFrame(np.asarray(cov), columns=meta["covariate_names"])
    return padded, covariates, pd.DataFrame(phi, columns=meta["param_names"])
