"""An exact Gaussian posterior for conjugate models (a reference for tests).

Models such as :class:`sknlme.models.LinearGaussian` know their posterior
``p(phi | y_i)`` in closed form (``exact_posterior(X) -> (means, covs)``).
:class:`ExactGaussianPosterior` wraps it behind the posterior contract used by
the population estimator (``sample``, ``log_prob``, ``transform``, ``model``),
so population code can be tested without training a network.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from .._numerics import LOG_2PI
from ..simulate import draw_seed, keyed_standard_normal


class ExactGaussianPosterior(TransformerMixin, BaseEstimator):
    """Closed-form Gaussian posterior of a conjugate model.

    Parameters
    ----------
    model : Model
        A model with ``exact_posterior(X) -> (means (n, d), covs (n, d, d))``,
        e.g. :class:`sknlme.models.LinearGaussian`.
    n_samples : int, default=100
        Number of draws per individual returned by :meth:`transform`.
    cov_scale : float, default=1.0
        Factor applied to every posterior covariance. ``1`` gives the exact
        posterior; another value gives a deliberately imperfect one (a stand-in
        for an imperfect network, e.g. to test importance sampling).
    random_state : int, RandomState or None, default=None
        Seed of :meth:`transform`.

    Attributes
    ----------
    model_ : Model
        The model (set by :meth:`fit`, which does no training).
    n_fit_calls_ : int
        How many times :meth:`fit` ran on this object (lets tests check that
        model selection never refits a frozen posterior).

    Examples
    --------
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> model = LinearGaussian(n_params=2, sigma=0.3)
    >>> X, _ = model.simulate(3, random_state=0)
    >>> post = ExactGaussianPosterior(model).fit()
    >>> phi = post.sample(X, 50, random_state=1)
    >>> phi.shape
    (3, 50, 2)
    >>> post.log_prob(X, phi).shape
    (3, 50)
    """

    _parameter_constraints = {
        "model": "no_validation",  # checked in fit (needs exact_posterior)
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "cov_scale": [Interval(Real, 0, None, closed="neither")],
        "random_state": ["random_state"],
    }

    def __init__(self, model, n_samples=100, cov_scale=1.0, random_state=None):
        self.model = model
        self.n_samples = n_samples
        self.cov_scale = cov_scale
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X=None, y=None):
        """Validate the parameters; there is nothing to train.

        Parameters
        ----------
        X, y : ignored
            Accepted for compatibility with training-based posteriors.

        Returns
        -------
        self : ExactGaussianPosterior

        Examples
        --------
        >>> from sknlme.models import LinearGaussian
        >>> from sknlme.posterior import ExactGaussianPosterior
        >>> post = ExactGaussianPosterior(LinearGaussian(n_params=2)).fit()
        >>> post.n_fit_calls_
        1
        """
        if not callable(getattr(self.model, "exact_posterior", None)):
            raise TypeError(
                f"model {self.model!r} has no exact_posterior(X); ExactGaussianPosterior "
                "needs a conjugate model such as sknlme.models.LinearGaussian"
            )
        kind = getattr(getattr(self.model, "prior", None), "kind", "normal")
        if kind != "normal":  # its Gaussian posteriors are under a normal training prior
            raise ValueError(
                f"ExactGaussianPosterior needs a normal training prior; "
                f"model {self.model!r} has a {kind} "
                "one (train an AmortizedPosterior under it)"
            )
        if not (np.isfinite(self.cov_scale) and self.cov_scale > 0):
            raise ValueError(f"cov_scale must be positive, got {self.cov_scale!r}")
        self.model_ = self.model
        self.n_fit_calls_ = getattr(self, "n_fit_calls_", 0) + 1
        return self

    def _moments(self, X):
        check_is_fitted(self, "model_")
        study = self.model_.prepare(X, require_values=False)
        means, covs = self.model_.exact_posterior(study)
        covs = covs * float(self.cov_scale)
        return means, np.linalg.cholesky(covs), study

    def sample(self, X, n_samples, random_state=None):
        """Draw from ``q(phi | y_i)`` for every individual.

        Parameters
        ----------
        X : DataFrame
            Individuals table.
        n_samples : int
            Draws per individual.
        random_state : int, RandomState or None, default=None
            Seed of the draws. Draws are keyed by individual: an individual's
            draws depend only on the seed and its ID, not on the other rows.

        Returns
        -------
        ndarray of shape (n_individuals, n_samples, n_params)

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.models import LinearGaussian
        >>> from sknlme.posterior import ExactGaussianPosterior
        >>> model = LinearGaussian(n_params=2, sigma=0.3)
        >>> X, _ = model.simulate(4, random_state=0)
        >>> post = ExactGaussianPosterior(model).fit()
        >>> draws = post.sample(X, 10, random_state=1)
        >>> bool(np.array_equal(post.sample(X.iloc[[2, 0]], 10, random_state=1), draws[[2, 0]]))
        True
        """
        n_samples = int(n_samples)
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        means, chol, study = self._moments(X)
        seed = draw_seed(check_random_state(random_state))
        n, d = means.shape
        z = keyed_standard_normal(seed, study.keys, n_samples * d).reshape(n, n_samples, d)
        return means[:, None, :] + np.einsum("nde,nke->nkd", chol, z)

    def log_prob(self, X, phi):
        """Log-density ``log q(phi_ik | y_i)``.

        Parameters
        ----------
        X : DataFrame
            Individuals table with ``n`` rows.
        phi : array-like of shape (n, K, n_params)

        Returns
        -------
        ndarray of shape (n, K), float64

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.models import LinearGaussian
        >>> from sknlme.posterior import ExactGaussianPosterior
        >>> model = LinearGaussian(n_params=2, sigma=0.3)
        >>> X, phi = model.simulate(3, random_state=0)
        >>> post = ExactGaussianPosterior(model).fit()
        >>> post.log_prob(X, phi.to_numpy()[:, None, :]).shape
        (3, 1)
        """
        means, chol, _ = self._moments(X)
        phi = np.asarray(phi, dtype=float)
        n, d = means.shape
        if phi.ndim != 3 or phi.shape[0] != n or phi.shape[2] != d:
            raise ValueError(f"phi must have shape ({n}, K, {d}), got {phi.shape}")
        resid = np.swapaxes(phi - means[:, None, :], 1, 2)  # (n, d, K)
        z = np.linalg.solve(chol, resid)  # (n, d, K)
        logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(-1)
        return -0.5 * (z**2).sum(1) - 0.5 * logdet[:, None] - 0.5 * d * LOG_2PI

    def transform(self, X):
        """Posterior draws, ``sample(X, self.n_samples, self.random_state)``.

        Parameters
        ----------
        X : DataFrame or Study
            Individuals table.

        Returns
        -------
        ndarray of shape (n_individuals, n_samples, n_params)

        Examples
        --------
        >>> from sknlme.models import LinearGaussian
        >>> from sknlme.posterior import ExactGaussianPosterior
        >>> model = LinearGaussian(n_params=2, sigma=0.3)
        >>> X, _ = model.simulate(3, random_state=0)
        >>> ExactGaussianPosterior(model, n_samples=5, random_state=0).fit().transform(X).shape
        (3, 5, 2)
        """
        return self.sample(X, self.n_samples, random_state=self.random_state)
