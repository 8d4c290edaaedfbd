"""From an individuals table and a posterior to the objective's inputs.

Covariate matrices (numeric, finite, named columns) and posterior draws with
their per-draw log offsets for the amortized likelihood.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["covariate_effects", "covariate_matrix"]


def _ident(X, i):
    """The ID of row ``i`` as a plain Python value (for messages)."""
    return X.index[[i]].tolist()[0]


def covariate_effects(covariates):
    """Normalise ``{column: parameter or list of parameters}`` to lists.

    Examples
    --------
    >>> covariate_effects({"WT": "log_CL", "AGE": ["log_V"]})
    {'WT': ['log_CL'], 'AGE': ['log_V']}
    """
    if covariates is None:
        return {}
    if not isinstance(covariates, dict):
        raise TypeError(
            f"covariates must be a dict column -> list of parameter names, got {covariates!r}"
        )
    return {str(c): [p] if isinstance(p, str) else list(p) for c, p in covariates.items()}


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
