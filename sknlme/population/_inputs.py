"""From an individuals table and a posterior to the objective's inputs.

Covariate matrices (numeric, finite, named columns) and posterior draws with
their per-draw log offsets for the amortized likelihood.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "build_objective",
    "covariate_design",
    "covariate_effects",
    "covariate_matrix",
    "covariate_transforms",
    "variance_group_spec",
]


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


def variance_group_spec(X, variance_groups):
    """``(column, labels, params)`` of ``variance_groups={column: params}`` on table ``X``.

    One categorical column (any dtype; its values are read as strings); a
    ValueError names the column when absent and the individual when its
    value is missing.

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"CELL_LINE": ["A", "B", "A"]}, index=[1, 2, 3])
    >>> column, labels, params = variance_group_spec(X, {"CELL_LINE": "log_delta"})
    >>> column, labels.tolist(), params
    ('CELL_LINE', ['A', 'B', 'A'], ['log_delta'])
    """
    if variance_groups is None:
        return None
    if not isinstance(variance_groups, dict) or len(variance_groups) != 1:
        raise ValueError(
            "variance_groups must be a dict of one column -> parameter names, "
            f"got {variance_groups!r}"
        )
    ((column, params),) = variance_groups.items()
    params = [params] if isinstance(params, str) else [str(p) for p in params]
    present = [] if X is None else list(X.columns)
    if column not in present:
        raise ValueError(
            f"variance group column {column!r} is not a column of X; columns: {present}"
        )
    col = X[column]
    bad = np.flatnonzero(col.isna().to_numpy())
    if bad.size:
        raise ValueError(
            f"variance group column {column!r} of individual {_ident(X, bad[0])!r} is missing"
        )
    return str(column), col.astype(str).to_numpy(), params


def build_objective(est, study, model, samples, offsets, fixed, bounds, floor_scale, levels=None):
    """The amortized :class:`PopulationObjective` of estimator ``est`` on ``study``'s draws.

    ``floor_scale`` multiplies ``est.variance_floor`` per parameter; ``levels``
    are the variance group levels of an earlier fit (so that its parameter
    vector lines up on new individuals).
    """
    from ._objective import PopulationObjective

    effects = covariate_effects(est.covariates)
    names = list(effects)
    re = est.random_effects
    return PopulationObjective(
        samples,
        offsets,
        list(model.param_names),
        covariance=est.covariance,
        random_effects=list(model.structural_params) if re is None else re,
        covariates=covariate_design(study.covariates, est.covariates) if names else None,
        covariate_names=names or None,
        covariate_effects=effects or None,
        fixed=fixed,
        variance_floor=est.variance_floor * floor_scale,
        bounds=bounds,
        variance_groups=variance_group_spec(study.covariates, est.variance_groups),
        group_levels=levels,
        random_effects_distribution=est.random_effects_distribution,
        df=est.df,
    )


def prior_scale(model):
    """``max(1, prior variance)`` of each parameter: the scale of ``variance_floor``.

    Examples
    --------
    >>> from sknlme.models import LinearGaussian
    >>> prior_scale(LinearGaussian(n_params=2)).tolist()
    [1.0, 1.0]
    """
    cov = np.asarray(model.prior_cov, dtype=float)
    return np.maximum(1.0, np.diag(cov) if cov.ndim == 2 else cov)


def bind_to_study(posterior, study, model):
    """The posterior (and its model) a fit of ``study`` uses.

    A posterior rescaling units is bound to this study's scales for the whole
    fit (one training prior, shifted into the study's units, for every call);
    any other comes back as it is, with ``model``.

    Examples
    --------
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> model = LinearGaussian(n_params=1)
    >>> post = ExactGaussianPosterior(model).fit()
    >>> bind_to_study(post, None, model) == (post, model)
    True
    """
    if getattr(posterior, "rescale_units", False):
        posterior = posterior.for_study(study)
        return posterior, posterior.model
    return posterior, model
