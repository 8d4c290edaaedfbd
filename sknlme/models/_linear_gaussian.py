"""A linear-Gaussian model whose posterior and marginal likelihood are exact.

``y_ij = sum_k phi_k t_ij**k + sigma * eps_ij`` with a normal prior on ``phi``
is conjugate: the posterior ``p(phi | y_i)`` and the marginal likelihood
``∫ p(y_i | phi) N(phi; m, S) dphi`` have closed forms. Tests of the
posterior estimator and of the population objective compare against them.
"""

from __future__ import annotations

import numpy as np

from .._numerics import LOG_2PI
from ..data import as_study, fixed_design
from ._base import Model


class LinearGaussian(Model):
    """Polynomial regression with Gaussian noise and a normal prior.

    ``y_ij = sum_{k<d} phi_k * t_j**k + sigma * eps_ij``, ``eps_ij ~ N(0, 1)``,
    i.e. ``y_i = A phi_i + sigma eps_i`` with the design matrix
    ``A[j, k] = t_j**k`` of shape (T, d). The noise SD ``sigma`` is known
    (not a parameter).

    Parameters
    ----------
    times : array-like of shape (T,), default=np.linspace(0, 1, 5)
        Observation times shared by every sampled design.
    n_params : int, default=2
        Number of polynomial coefficients ``d`` (degree ``d - 1``).
    sigma : float, default=0.5
        Known noise standard deviation.
    prior_mean : array-like of shape (d,), default=None
        Prior mean; zeros when None.
    prior_cov : array-like of shape (d,) or (d, d), default=None
        Prior variances or covariance; identity when None.

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.models import LinearGaussian
    >>> model = LinearGaussian(times=[0.0, 0.5, 1.0], n_params=2, sigma=0.1)
    >>> X, phi = model.simulate(4, random_state=0)
    >>> list(phi.columns)
    ['theta0', 'theta1']
    >>> means, covs = model.exact_posterior(X)
    >>> means.shape, covs.shape
    ((4, 2), (4, 2, 2))
    >>> bool(np.all(np.abs(means - phi.to_numpy()) < 5 * np.sqrt(covs[:, [0, 1], [0, 1]])))
    True
    """

    def __init__(
        self,
        times=None,
        n_params=2,
        sigma=0.5,
        prior_mean=None,
        prior_cov=None,
    ):
        times = np.linspace(0.0, 1.0, 5) if times is None else times
        self.times = np.asarray(times, dtype=float).reshape(-1)
        if self.times.size == 0 or np.any(np.diff(self.times) <= 0) or self.times[0] < 0:
            raise ValueError(f"times must be non-negative and strictly increasing, got {times}")
        d = int(n_params)
        if d < 1:
            raise ValueError(f"n_params must be >= 1, got {n_params}")
        self.sigma = float(sigma)
        if not (np.isfinite(self.sigma) and self.sigma > 0):
            raise ValueError(f"sigma must be positive, got {sigma}")
        super().__init__(
            [f"theta{k}" for k in range(d)],
            np.zeros(d) if prior_mean is None else prior_mean,
            np.eye(d) if prior_cov is None else prior_cov,
            output_names=("y",),
            name="linear-gaussian",
        )

    # ---------------------------------------------------------------- helpers
    def design_matrix(self, times):
        """Polynomial basis ``times[..., None] ** arange(d)``, shape (..., d).

        Parameters
        ----------
        times : array-like
            Time points, any shape.

        Returns
        -------
        ndarray of shape ``times.shape + (n_params,)``

        Examples
        --------
        >>> from sknlme.models import LinearGaussian
        >>> LinearGaussian(n_params=3).design_matrix([2.0])
        array([[1., 2., 4.]])
        """
        t = np.asarray(times, dtype=float)
        return t[..., None] ** np.arange(self.n_params)

    def sample_design(self, n, random_state=None):
        """Every individual is observed at ``self.times``, without doses.

        Parameters
        ----------
        n : int
            Number of designs.
        random_state : int, RandomState or None
            Unused: the design is fixed.

        Returns
        -------
        design : Padded
            Observation times (values all NaN).
        covariates : None

        Examples
        --------
        >>> from sknlme.models import LinearGaussian
        >>> design, _ = LinearGaussian(times=[0.0, 1.0]).sample_design(4)
        >>> design.times.shape
        (4, 2)
        """
        design = fixed_design(self.times, n)
        return design, None

    def _predict(self, phi, design, covariates):
        A = self.design_matrix(design.times)  # (n, T, d)
        return np.einsum("ntd,nd->nt", A, phi)[..., None]

    def _add_noise(self, pred, phi, rng):
        return pred + self.sigma * rng.standard_normal(pred.shape)

    def _log_likelihood(self, phi, padded, covariates):
        A = self.design_matrix(padded.times)  # (n, T, d)
        mean = np.einsum("ntd,nkd->nkt", A, phi)
        mask = padded.value_mask()[..., 0]  # (n, T)
        y = np.where(mask, padded.values[..., 0], 0.0)
        z = (y[:, None, :] - mean) / self.sigma
        per_point = -0.5 * z**2 - np.log(self.sigma) - 0.5 * LOG_2PI
        return np.where(mask[:, None, :], per_point, 0.0).sum(-1)

    def _observed(self, X):
        padded = as_study(X, n_outputs=1, require_values=False).padded
        mask = padded.value_mask()[..., 0]
        A = self.design_matrix(padded.times) * mask[..., None]  # zero rows where missing
        y = np.where(mask, padded.values[..., 0], 0.0)
        return A, y, mask

    # ------------------------------------------------------------ exact maths
    def exact_posterior(self, X):
        """Exact posterior ``p(phi | y_i)`` under the training prior.

        Only observed values enter (missing values and padding are ignored).

        Parameters
        ----------
        X : DataFrame or Study
            Individuals table.

        Returns
        -------
        means : ndarray of shape (n, d)
        covs : ndarray of shape (n, d, d)

        Examples
        --------
        >>> from sknlme.models import LinearGaussian
        >>> model = LinearGaussian(n_params=1, sigma=1.0)
        >>> X, _ = model.simulate(3, random_state=0)
        >>> means, covs = model.exact_posterior(X)      # 5 points, prior N(0, 1)
        >>> means.shape, round(float(covs[0, 0, 0]), 4)
        ((3, 1), 0.1667)
        """
        A, y, _ = self._observed(X)
        prior_prec = np.linalg.inv(self.prior_cov)
        prec = prior_prec + np.einsum("ntd,nte->nde", A, A) / self.sigma**2
        rhs = prior_prec @ self.prior_mean + np.einsum("ntd,nt->nd", A, y) / self.sigma**2
        covs = np.linalg.inv(prec)
        covs = 0.5 * (covs + np.swapaxes(covs, 1, 2))
        means = np.einsum("nde,ne->nd", covs, rhs)
        return means, covs

    def marginal_loglik(self, X, mean, cov):
        """Closed-form ``log ∫ p(y_i | phi) N(phi; mean, cov) dphi`` per individual.

        Equals ``log N(y_obs; A_obs mean, A_obs cov A_obs' + sigma² I)`` over the
        observed values of each individual.

        Parameters
        ----------
        X : DataFrame
            Individuals table with ``n`` rows.
        mean : array-like of shape (d,) or (n, d)
        cov : array-like of shape (d, d) or (n, d, d)

        Returns
        -------
        ndarray of shape (n,)

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.models import LinearGaussian
        >>> model = LinearGaussian()
        >>> X, _ = model.simulate(3, random_state=0)
        >>> ll = model.marginal_loglik(X, model.prior_mean, model.prior_cov)
        >>> ll.shape, bool(np.all(np.isfinite(ll)))
        ((3,), True)
        """
        A, y, mask = self._observed(X)
        n, T, d = A.shape
        mean = np.broadcast_to(np.asarray(mean, dtype=float), (n, d))
        cov = np.broadcast_to(np.asarray(cov, dtype=float), (n, d, d))
        S = np.einsum("ntd,nde,nse->nts", A, cov, A)
        # missing points: identity row/column, zero residual -> contribute log 1 and 0
        S = S + np.where(mask, self.sigma**2, 1.0)[:, :, None] * np.eye(T)
        r = y - np.einsum("ntd,nd->nt", A, mean)
        chol = np.linalg.cholesky(S)
        z = np.linalg.solve(chol, r[..., None])[..., 0]
        logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(-1)
        n_obs = mask.sum(-1)
        return -0.5 * (z**2).sum(-1) - 0.5 * logdet - 0.5 * n_obs * LOG_2PI

    def __repr__(self):
        return f"LinearGaussian(n_params={self.n_params}, sigma={self.sigma})"
