"""The array maths of the residual tables: residual SDs, decorrelated residuals, NPDE.

See :mod:`sknlme.population._residuals` for the definitions.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import norm

__all__ = ["decorrelated_residuals", "npde_from_simulations", "residual_sd"]


def residual_sd(model, pred, phi):
    """Residual SD of each prediction under the model's error model.

    Parameters
    ----------
    model : Model
        With an ``error_model`` and ``error_params`` (the built-in PK models),
        or a known constant ``sigma`` (:class:`~sknlme.models.LinearGaussian`).
    pred : ndarray of shape (n, T, k)
        Predictions.
    phi : ndarray of shape (n, d)
        Parameters (their error parameters are used).

    Returns
    -------
    ndarray of shape (n, T, k)
        NaN, with a warning, for a model with neither.

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.models import OneCompartmentOral
    >>> from sknlme.population import residual_sd
    >>> phi = np.array([[0.0, 0.0, 0.0, np.log(0.5)]])
    >>> residual_sd(OneCompartmentOral(), np.ones((1, 2, 1)), phi).ravel()
    array([0.5, 0.5])
    """
    pred = np.asarray(pred, dtype=float)
    phi = np.asarray(phi, dtype=float)
    err = getattr(model, "error_model", None)
    if err is not None and getattr(model, "error_params", ()):
        idx = [list(model.param_names).index(p) for p in err.param_names]
        return np.stack([err.sd(pred[i], phi[i, idx]) for i in range(len(pred))])
    sigma = getattr(model, "sigma", None)
    if sigma is not None:
        return np.full(pred.shape, float(sigma))
    warnings.warn(
        f"{model!r} has neither an error_model with error_params nor a known sigma: "
        "residual SDs, IWRES, WRES, CWRES and epsilon-shrinkage are NaN",
        RuntimeWarning,
        stacklevel=2,
    )
    return np.full(pred.shape, np.nan)


def decorrelated_residuals(y, f, G, omega, r_var, shift=None):
    """Residuals of a model linearised in the random effects, decorrelated.

    ``r = y - f + G shift`` (``shift``: the random effects at the linearisation
    point, 0 for WRES), ``C = G Omega G^T + diag(r_var)``, result ``L^-1 r``
    with ``C = L L^T``. NaN when ``C`` is not positive definite.

    Parameters
    ----------
    y, f, r_var : ndarray of shape (m,)
        Observations, predictions and residual variances at the linearisation point.
    G : ndarray of shape (m, q)
        Jacobian of ``f`` with respect to the ``q`` random effects.
    omega : ndarray of shape (q, q)
        Random-effects covariance.
    shift : ndarray of shape (q,), default=None

    Returns
    -------
    ndarray of shape (m,)

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.population import decorrelated_residuals
    >>> r = decorrelated_residuals(np.array([1.0, 1.0]), np.zeros(2), np.ones((2, 1)),
    ...                            np.array([[1.0]]), np.ones(2))
    >>> np.round(r, 4)  # C = [[2, 1], [1, 2]]
    array([0.7071, 0.4082])
    """
    r = np.asarray(y, float) - np.asarray(f, float)
    if shift is not None:
        r = r + G @ np.asarray(shift, float)
    C = G @ omega @ G.T + np.diag(r_var)
    try:
        L = np.linalg.cholesky(C)
    except np.linalg.LinAlgError:
        return np.full(r.shape, np.nan)
    return np.linalg.solve(L, r)


def npde_from_simulations(y, y_sim):
    """Normalised prediction distribution errors of one individual.

    Parameters
    ----------
    y : ndarray of shape (m,)
        Observed values.
    y_sim : ndarray of shape (K, m)
        Simulations of the same design from the fitted population.

    Returns
    -------
    ndarray of shape (m,)
        NaN when the simulated covariance is singular.

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.population import npde_from_simulations
    >>> sims = np.random.default_rng(0).normal(size=(1000, 2))
    >>> bool(np.all(np.abs(npde_from_simulations(np.zeros(2), sims)) < 0.1))
    True
    """
    y_sim = np.asarray(y_sim, float)
    K = len(y_sim)
    mean = y_sim.mean(0)
    try:
        L = np.linalg.cholesky(np.atleast_2d(np.cov(y_sim, rowvar=False)))
    except np.linalg.LinAlgError:
        return np.full(np.shape(y), np.nan)
    obs = np.linalg.solve(L, np.asarray(y, float) - mean)
    sim = np.linalg.solve(L, (y_sim - mean).T).T
    pde = np.clip((sim < obs).mean(0), 1 / (2 * K), 1 - 1 / (2 * K))
    return norm.ppf(pde)
