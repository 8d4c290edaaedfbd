"""Residual error models: additive, proportional and combined Gaussian errors.

An error model turns noise-free predictions ``f`` into observations
``y = f + sd(f) * eps`` with ``eps ~ N(0, 1)`` and gives the matching exact
Gaussian log-likelihood. Its parameters sit on the log scale at the end of a
model's parameter vector:

===============  ==================  ==============================
kind             parameters          standard deviation
===============  ==================  ==============================
``additive``     ``log_sigma``       ``sigma``
``proportional`` ``log_b``           ``b |f|``
``combined``     ``log_a, log_b``    ``sqrt(a² + b² f²)``
===============  ==================  ==============================
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.utils import check_random_state

from ..simulate._closed_form import ADDITIVE, COMBINED, PROPORTIONAL, gaussian_loglik
from ..simulate._random import draw_seed, standard_normal

_KINDS = {
    "additive": (ADDITIVE, ("log_sigma",)),
    "proportional": (PROPORTIONAL, ("log_b",)),
    "combined": (COMBINED, ("log_a", "log_b")),
}


class ErrorModel:
    """A Gaussian residual error model.

    Parameters
    ----------
    kind : {"additive", "proportional", "combined"}, default="additive"

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.models import ErrorModel
    >>> err = ErrorModel("combined")
    >>> err.param_names
    ('log_a', 'log_b')
    >>> err.sd(np.array([0.0, 3.0]), np.log([0.4, 0.1]))
    array([0.4, 0.5])
    """

    def __init__(self, kind="additive"):
        if kind not in _KINDS:
            raise ValueError(f"unknown error model {kind!r}; choose one of {sorted(_KINDS)}")
        self.kind = kind
        self.code, self.param_names = _KINDS[kind]

    @property
    def n_params(self):
        """Number of error parameters."""
        return len(self.param_names)

    def sd(self, pred, params):
        """Residual SD for predictions ``pred`` (...) and log-scale ``params`` (n_params,).

        Parameters
        ----------
        pred : array-like
            Noise-free predictions, any shape.
        params : array-like of shape (n_params,)
            Error parameters (log scale).

        Returns
        -------
        ndarray
            Of the shape of ``pred``.

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.models import ErrorModel
        >>> ErrorModel("proportional").sd(np.array([1.0, -2.0]), np.log([0.1]))
        array([0.1, 0.2])
        """
        pred = np.asarray(pred, dtype=float)
        scale = np.exp(np.asarray(params, dtype=float))
        if self.code == ADDITIVE:
            return np.broadcast_to(scale[0], pred.shape).copy()
        if self.code == PROPORTIONAL:
            return scale[0] * np.abs(pred)
        return np.sqrt(scale[0] ** 2 + scale[1] ** 2 * pred**2)

    def add_noise(self, pred, params, random_state=None):
        """Noisy observations.

        Parameters
        ----------
        pred : ndarray of shape (n, T, k)
            Noise-free predictions.
        params : ndarray of shape (n, n_params)
            Error parameters of each individual (log scale).
        random_state : int, RandomState, Generator or None

        Returns
        -------
        ndarray of shape (n, T, k)

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.models import ErrorModel
        >>> pred = np.ones((2, 3, 1))
        >>> y = ErrorModel("additive").add_noise(pred, np.log([[0.1], [0.1]]), random_state=0)
        >>> y.shape, bool(np.all(np.abs(y - pred) < 1.0))
        ((2, 3, 1), True)
        """
        pred = np.asarray(pred, dtype=float)
        params = np.asarray(params, dtype=float)
        n = pred.shape[0]
        rng = random_state
        if not isinstance(rng, np.random.Generator):
            rng = check_random_state(rng)
        eps = standard_normal(draw_seed(rng), n, int(np.prod(pred.shape[1:])))
        scale = np.exp(params)[:, :, None, None]  # (n, n_params, 1, 1)
        if self.code == ADDITIVE:
            sd = scale[:, 0]
        elif self.code == PROPORTIONAL:
            sd = scale[:, 0] * np.abs(pred)
        else:
            sd = np.sqrt(scale[:, 0] ** 2 + scale[:, 1] ** 2 * pred**2)
        return pred + sd * eps.reshape(pred.shape)

    def log_likelihood(self, pred, params, values, mask):
        """Gaussian log-likelihood summed over the observed values.

        Parameters
        ----------
        pred : ndarray of shape (n, K, T, k)
            Predictions for ``K`` parameter draws per individual.
        params : ndarray of shape (n, K, n_params)
            Error parameters of the draws (log scale).
        values : ndarray of shape (n, T, k)
            Observations (anything where ``mask`` is False).
        mask : ndarray of shape (n, T, k), bool
            True where a value was observed.

        Returns
        -------
        ndarray of shape (n, K)
            Points with zero predicted SD (proportional error at ``f = 0``)
            add 0 when matched exactly and ``-inf`` otherwise (with a warning).

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.models import ErrorModel
        >>> err = ErrorModel("additive")
        >>> pred = np.zeros((1, 1, 2, 1))          # one individual, one draw, two points
        >>> ll = err.log_likelihood(pred, np.zeros((1, 1, 1)), np.zeros((1, 2, 1)),
        ...                         np.ones((1, 2, 1), dtype=bool))
        >>> bool(np.isclose(ll[0, 0], -np.log(2 * np.pi)))
        True
        """
        n, K = pred.shape[:2]
        mask = np.asarray(mask, dtype=bool).reshape(n, -1)
        values = np.where(mask, np.asarray(values, dtype=float).reshape(n, -1), 0.0)
        out = gaussian_loglik(
            np.ascontiguousarray(pred, dtype=float).reshape(n, K, -1),
            np.ascontiguousarray(params, dtype=float),
            np.ascontiguousarray(values),
            np.ascontiguousarray(mask),
            self.code,
        )
        warn_nonfinite(out, self.kind)
        return out

    def __repr__(self):
        return f"ErrorModel({self.kind!r})"


def make_error_model(error):
    """An :class:`ErrorModel` from a kind name (or the instance itself)."""
    if isinstance(error, ErrorModel):
        return error
    return ErrorModel(error)


def additive_log_sd(model, padded):
    """The log-scale additive SD in which ``model``'s log-likelihood has a known form.

    A model class that sets ``exact_additive_error = True`` declares that
    with an additive error model each draw's log-likelihood is exactly
    ``-0.5 R exp(-2 s) - m (s + log(2 pi) / 2)``: ``s`` the log SD, ``m`` the
    individual's observed values and ``R`` their residual sum of squares,
    which does not depend on ``s`` (one SD for all outputs); a subclass that
    defines its own ``_log_likelihood`` must declare it again. Censored values
    (M3 terms) break the form. The likelihood's derivatives in ``s`` then
    follow from its value (the fixed-proposal surrogate needs no likelihood
    passes at shifted SDs for them).

    Parameters
    ----------
    model : Model
    padded : Padded
        The individuals' observations.

    Returns
    -------
    (j, m) or None
        ``j`` the position of ``s`` in the model's parameters, ``m`` (n,) the
        observed values per individual; None where the form does not hold.

    Examples
    --------
    >>> from sknlme.models import OneCompartmentOral, additive_log_sd
    >>> model = OneCompartmentOral()
    >>> X, _ = model.simulate(2, random_state=0)
    >>> j, m = additive_log_sd(model, model.prepare(X).padded)
    >>> model.param_names[j], m.shape
    ('log_sigma', (2,))
    >>> additive_log_sd(OneCompartmentOral(error="proportional"), model.prepare(X).padded)
    """
    error = getattr(model, "error_model", None)
    if not getattr(model, "exact_additive_error", False) or error is None:
        return None
    if _defining_class(model, "_log_likelihood") is not _defining_class(
        model, "exact_additive_error"
    ):  # a subclass with its own likelihood has not declared the form for it
        return None
    if error.kind != "additive" or np.any(padded.censored & padded.value_mask()):
        return None
    j = list(model.param_names).index(error.param_names[0])
    return j, padded.value_mask().reshape(padded.n_individuals, -1).sum(axis=1).astype(float)


def _defining_class(obj, name):
    return next(c for c in type(obj).__mro__ if name in vars(c))


def warn_nonfinite(loglik, what):
    """Warn (naming the first individual) when log-likelihoods are not finite."""
    bad = ~np.isfinite(loglik)
    if bad.any():
        i = int(np.argwhere(bad)[0][0])
        warnings.warn(
            f"{int(bad.sum())} non-finite log-likelihood value(s) ({what}), first for "
            f"individual at row {i}: a zero predicted SD with a mismatching observation, "
            "or non-finite predictions",
            RuntimeWarning,
            stacklevel=3,
        )
