"""Simulated populations with known population parameters."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state


def _vector(value, names, what):
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(names))
        missing = [p for p in names if p not in value]
        if unknown or missing:
            raise ValueError(
                f"population {what}: unknown parameters {unknown}, missing parameters {missing}"
            )
        value = [value[p] for p in names]
    arr = np.asarray(value, dtype=float).reshape(-1)
    if arr.shape != (len(names),):
        raise ValueError(f"population {what} must have {len(names)} entries, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"population {what} must be finite, got {arr.tolist()}")
    return arr


def _factor(params, names):
    """A matrix ``L`` with ``L L' = cov`` (zero variances allowed)."""
    given = [k for k in ("cov", "var", "sd") if k in params]
    if len(given) != 1:
        raise ValueError(f"population_params needs exactly one of cov, var or sd; got {given}")
    d = len(names)
    if given[0] == "cov":
        cov = np.asarray(params["cov"], dtype=float)
        if cov.shape != (d, d) or not np.allclose(cov, cov.T):
            raise ValueError(f"population cov must be a symmetric ({d}, {d}) matrix")
        w, v = np.linalg.eigh(cov)
        if w.min() < -1e-10 * max(1.0, w.max()):
            raise ValueError(f"population cov is not positive semi-definite (eigenvalue {w.min()})")
        return v * np.sqrt(np.clip(w, 0.0, None))
    sd = _vector(params[given[0]], names, given[0])
    if np.any(sd < 0):
        raise ValueError(f"population {given[0]} must be non-negative, got {sd.tolist()}")
    return np.diag(np.sqrt(sd) if given[0] == "var" else sd)


def make_population(model, n, population_params, random_state=None, design=None):
    """Simulate a population with known population parameters.

    Individual parameters are drawn as ``phi_i ~ N(mean, cov)`` on the
    model's scale and data are simulated for them.

    Parameters
    ----------
    model : Model
        The individual model.
    n : int
        Number of individuals (tested up to 1,000,000).
    population_params : dict
        ``mean``: array of shape (n_params,) or mapping name -> value; and
        exactly one of ``cov`` (n_params, n_params), ``var`` or ``sd``
        (arrays or mappings). Zero variances give parameters without random
        effect.
    random_state : int, RandomState or None
        Controls every draw.
    design : DataFrame, default=None
        Individuals table whose designs (times, doses, covariates) are used;
        when its length differs from ``n`` its rows are resampled with
        replacement (IDs become ``1..n``). Designs are sampled by the model
        when None.

    Returns
    -------
    X : DataFrame
        Individuals table.
    phi : DataFrame of shape (n, n_params)
        The true individual parameters.

    Examples
    --------
    >>> from sknlme.models import OneCompartmentOral
    >>> from sknlme.datasets import make_population
    >>> model = OneCompartmentOral()
    >>> params = dict(mean=[-2.45, 0.47, -3.23, -0.34], sd=[0.0, 0.64, 0.17, 0.0])
    >>> X, phi = make_population(model, 100, params, random_state=0)
    >>> X.shape[0], round(float(phi["log_ke"].std()), 6)
    (100, 0.0)
    """
    names = list(model.param_names)
    if not isinstance(population_params, Mapping) or "mean" not in population_params:
        raise ValueError("population_params must be a dict with 'mean' and one of cov/var/sd")
    unknown = sorted(set(population_params) - {"mean", "cov", "var", "sd"})
    if unknown:
        raise ValueError(f"unknown population_params keys {unknown}")
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    mean = _vector(population_params["mean"], names, "mean")
    factor = _factor(population_params, names)
    rng = check_random_state(random_state)
    phi = mean + rng.standard_normal((n, len(names))) @ factor.T
    if design is not None:
        if not isinstance(design, pd.DataFrame):
            raise TypeError(f"design must be an individuals DataFrame, got {type(design)}")
        if len(design) != n:
            design = design.iloc[rng.randint(0, len(design), size=n)].copy()
            design.index = pd.Index(np.arange(1, n + 1), name=design.index.name or "ID")
    return model.simulate(n, design=design, phi=phi, random_state=rng)
