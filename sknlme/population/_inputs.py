"""From an individuals table and a posterior to the objective's inputs.

Covariate matrices (numeric, finite, named columns) and posterior draws with
their per-draw log offsets for the amortized likelihood.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["covariate_design", "covariate_effects", "covariate_matrix", "covariate_transforms"]


def _ident(X, i):
    """The ID of row ``i`` as a plain Python value (for messages)."""
    return X.index[[i]].tolist()[0]


_MODELS = ("linear", "log")


def _spec(column, spec):
    """``(params, model, center)`` of one entry of ``covariates``."""
    if isinstance(spec, str):
        return [spec], "linear", None
    if isinstance(spec, dict):
        unknown = set(spec) - {"params", "model", "center"}
        if unknown or "params" not in spec:
            raise ValueError(
                f"covariates[{column!r}] must have keys 'params' and optionally 'model', "
                f"'center'; got {sorted(spec)}"
            )
        params = spec["params"]
        params = [params] if isinstance(params, str) else list(params)
        model = spec.get("model", "linear")
        if model not in _MODELS:
            raise ValueError(
                f"covariates[{column!r}]['model'] must be one of {_MODELS}, got {model!r}"
            )
        center = spec.get("center")
        if center is not None:
            center = float(center)
            if not np.isfinite(center) or (model == "log" and center <= 0):
                raise ValueError(
                    f"covariates[{column!r}]['center'] must be finite"
                    + (" and positive for model='log'" if model == "log" else "")
                    + f", got {spec['center']!r}"
                )
        return params, model, center
    return list(spec), "linear", None


def covariate_effects(covariates):
    """Normalise ``covariates`` to ``{column: list of parameter names}``.

    Each value is a parameter name, a list of them, or a dict
    ``{"params": [...], "model": "linear" or "log", "center": c}`` (see
    :func:`covariate_transforms`).

    Examples
    --------
    >>> covariate_effects({"WT": "log_CL", "AGE": ["log_V"]})
    {'WT': ['log_CL'], 'AGE': ['log_V']}
    >>> covariate_effects({"WT": {"params": ["log_CL"], "model": "log", "center": 70}})
    {'WT': ['log_CL']}
    """
    if covariates is None:
        return {}
    if not isinstance(covariates, dict):
        raise TypeError(
            f"covariates must be a dict column -> list of parameter names, got {covariates!r}"
        )
    return {str(c): _spec(c, p)[0] for c, p in covariates.items()}


def covariate_transforms(covariates):
    """``{column: (model, center)}`` of ``covariates`` (see :func:`covariate_effects`).

    ``"linear"`` enters ``c - center`` (``center`` 0 when None), so the fixed
    effect is the parameter at ``c = center``; ``"log"`` enters
    ``log(c / center)`` (``center`` 1 when None): on a log-scale parameter a
    power model ``P = P_ref (c / center)^b``.

    Examples
    --------
    >>> covariate_transforms({"WT": {"params": "log_CL", "model": "log", "center": 70},
    ...                       "AGE": "log_V"})
    {'WT': ('log', 70.0), 'AGE': ('linear', None)}
    """
    if covariates is None:
        return {}
    covariate_effects(covariates)
    return {str(c): _spec(c, p)[1:] for c, p in covariates.items()}


def covariate_design(X, covariates):
    """Transformed covariate matrix (n, p) of the columns of ``covariates``.

    Columns as :func:`covariate_matrix` reads them, then centred or
    log-transformed by :func:`covariate_transforms`; a ValueError names the
    individual with a non-positive value under ``model="log"``.

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"WT": [35.0, 70.0, 140.0]})
    >>> covariate_design(X, {"WT": {"params": ["log_CL"], "model": "log", "center": 70}})
    array([[-0.69314718],
           [ 0.        ],
           [ 0.69314718]])
    """
    transforms = covariate_transforms(covariates)
    C = covariate_matrix(X, list(transforms))
    for j, (name, (model, center)) in enumerate(transforms.items()):
        if model == "log":
            bad = np.flatnonzero(C[:, j] <= 0)
            if bad.size:
                raise ValueError(
                    f"covariate {name!r} of individual {_ident(X, bad[0])!r} is "
                    f"{C[bad[0], j]!r}: model='log' needs positive values"
                )
            C[:, j] = np.log(C[:, j] / (1.0 if center is None else center))
        elif center is not None:
            C[:, j] -= center
    return C


def covariate_matrix(X, names):
    """Float matrix (n, p) of the covariate columns ``names`` of ``X``.

    ``X`` is a study's ``covariates`` DataFrame (every column a covariate).
    Raises a ValueError naming the column when it is absent or not numeric
    (encode categories first, e.g. with ``OneHotEncoder``) and naming the
    individual when a value is missing or infinite.

    Examples
    --------
    >>> import pandas as pd
    >>> covariate_matrix(pd.DataFrame({"WT": [60, 80], "AGE": [30, 40]}), ["AGE"])
    array([[30.],
           [40.]])
    """
    present = list(X.columns)
    cols = []
    for name in names:
        if name not in present:
            raise ValueError(f"covariate {name!r} is not a column of X; columns: {present}")
        col = X[name]
        if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
            raise ValueError(
                f"covariate {name!r} is not numeric (dtype {col.dtype}); encode categories "
                "as numeric indicator columns first, e.g. with "
                "sklearn.preprocessing.OneHotEncoder in a ColumnTransformer"
            )
        values = col.to_numpy(dtype=float, na_value=np.nan)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            value = float(values[bad[0]])
            raise ValueError(f"covariate {name!r} of individual {_ident(X, bad[0])!r} is {value!r}")
        cols.append(values)
    return np.stack(cols, axis=1) if cols else np.empty((len(X), 0))
