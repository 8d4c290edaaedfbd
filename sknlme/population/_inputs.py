"""From an individuals table and a posterior to the objective's inputs.

Covariate matrices (numeric, finite, named columns) and posterior draws with
their per-draw log offsets for the amortized likelihood.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._objective import amortized_offsets

__all__ = ["covariate_effects", "covariate_matrix", "posterior_draws"]


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


def posterior_draws(posterior, model, study, n_samples, seed):
    """Posterior draws (n, K, d) and their amortized offsets ``-log p0(phi_ik)`` (n, K).

    Examples
    --------
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> model = LinearGaussian(n_params=2)
    >>> X, _ = model.simulate(3, random_state=0)
    >>> post = ExactGaussianPosterior(model).fit()
    >>> draws, offsets = posterior_draws(post, model, model.prepare(X), 5, seed=0)
    >>> draws.shape, offsets.shape
    ((3, 5, 2), (3, 5))
    """
    samples = np.asarray(posterior.sample(study, n_samples, random_state=seed))
    d = len(model.param_names)
    if samples.shape != (len(study), n_samples, d):
        raise ValueError(
            f"posterior.sample returned shape {samples.shape}, expected "
            f"({len(study)}, {n_samples}, {d}) for the parameters {list(model.param_names)} "
            "of posterior.model: is the posterior trained for another model?"
        )
    bad = ~np.all(np.isfinite(samples), axis=(1, 2))
    if bad.any():
        i = np.flatnonzero(bad)[0]
        raise ValueError(f"posterior draws of individual {study.ids[i]!r} are not finite")
    return samples, amortized_offsets(samples, model.prior_mean, model.prior_cov)
