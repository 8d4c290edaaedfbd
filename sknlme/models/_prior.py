"""Training priors: :class:`NormalPrior` and the box :class:`UniformPrior`.

A prior knows how to draw parameter vectors, its log density, its first two
moments (the posterior standardises network inputs and outputs with them) and
its precision (the Gaussian-likelihood approximation of the importance
likelihood subtracts it from the posterior precision: ``Sigma0^-1`` for a
normal prior, 0 inside a box).
"""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state

from .._numerics import LOG_2PI

__all__ = ["NormalPrior", "UniformPrior", "prior_from_dict"]


def _as_cov(prior_cov, d):
    cov = np.asarray(prior_cov, dtype=float)
    if cov.ndim == 1:
        cov = np.diag(cov)
    if cov.shape != (d, d):
        raise ValueError(f"prior_cov must have shape ({d},) or ({d}, {d}), got {cov.shape}")
    if not np.allclose(cov, cov.T):
        raise ValueError("prior_cov must be symmetric")
    try:
        np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        raise ValueError("prior_cov must be positive definite") from None
    return cov


class NormalPrior:
    """The normal training prior ``N(mean, cov)``.

    Parameters
    ----------
    mean : array-like of shape (d,)
    cov : array-like of shape (d,) or (d, d)
        Variances or covariance.

    Examples
    --------
    >>> from sknlme.models import NormalPrior
    >>> prior = NormalPrior([0.0, 1.0], [1.0, 4.0])
    >>> prior.sample(3, random_state=0).shape, round(float(prior.log_density([0.0, 1.0])), 4)
    ((3, 2), -2.531)
    """

    kind = "normal"

    def __init__(self, mean, cov):
        self.mean = np.asarray(mean, dtype=float).reshape(-1)
        if self.mean.size == 0 or not np.all(np.isfinite(self.mean)):
            raise ValueError(f"prior mean must be non-empty and finite, got {mean}")
        self.cov = _as_cov(cov, self.mean.size)

    @property
    def precision(self):
        """``cov^-1``, shape (d, d)."""
        return np.linalg.inv(self.cov)

    def sample(self, n, random_state=None):
        """``n`` draws, shape (n, d).

        Examples
        --------
        >>> NormalPrior([0.0], [1.0]).sample(2, random_state=0).round(3)
        array([[1.764],
               [0.4  ]])
        """
        rng = check_random_state(random_state)
        chol = np.linalg.cholesky(self.cov)
        return self.mean + rng.standard_normal((n, self.mean.size)) @ chol.T

    def log_density(self, phi):
        """Log density at ``phi`` (..., d), shape (...).

        Examples
        --------
        >>> round(float(NormalPrior([0.0], [1.0]).log_density([0.0])), 4)
        -0.9189
        """
        phi = np.asarray(phi, dtype=float)
        d = self.mean.size
        chol = np.linalg.cholesky(self.cov)
        z = np.linalg.solve(chol, (phi - self.mean).reshape(-1, d).T).T
        logdet = 2.0 * np.log(np.diag(chol)).sum()
        out = -0.5 * (z**2).sum(-1) - 0.5 * logdet - 0.5 * d * LOG_2PI
        return out.reshape(phi.shape[:-1])

    def to_dict(self):
        """JSON-ready description (see :func:`prior_from_dict`).

        Examples
        --------
        >>> NormalPrior([0.0], [2.0]).to_dict()
        {'kind': 'normal', 'mean': [0.0], 'cov': [[2.0]]}
        """
        return {"kind": "normal", "mean": self.mean.tolist(), "cov": self.cov.tolist()}

    def __repr__(self):
        return f"NormalPrior(mean={self.mean.tolist()}, cov=diag {np.diag(self.cov).tolist()})"


class UniformPrior:
    """The uniform (box) training prior on ``[low_j, high_j]`` for every parameter ``j``.

    Its moments ``mean = (low + high) / 2`` and ``cov = diag((high - low)^2 / 12)``
    stand for it where a mean and covariance are needed (standardising network
    inputs and outputs, starting points, the wide normal prior of the Laplace
    fallback); its precision is 0 (the prior is flat inside the box).

    Parameters
    ----------
    low, high : array-like of shape (d,)
        Finite bounds with ``low < high``.

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.models import UniformPrior
    >>> prior = UniformPrior([-1.0, 0.0], [1.0, 4.0])
    >>> prior.mean, np.diag(prior.cov).round(4)
    (array([0., 2.]), array([0.3333, 1.3333]))
    >>> prior.log_density([[0.0, 1.0], [2.0, 1.0]])  # log(1 / 8) inside, -inf outside
    array([-2.07944154,        -inf])
    """

    kind = "uniform"

    def __init__(self, low, high):
        self.low = np.asarray(low, dtype=float).reshape(-1)
        self.high = np.asarray(high, dtype=float).reshape(-1)
        if self.low.size == 0 or self.low.shape != self.high.shape:
            raise ValueError(
                f"low and high must be non-empty and of one shape, got {self.low.shape} "
                f"and {self.high.shape}"
            )
        bad = ~(np.isfinite(self.low) & np.isfinite(self.high) & (self.low < self.high))
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"parameter {j} has bounds low={self.low[j]}, high={self.high[j]}; they must "
                "be finite with low < high"
            )

    @property
    def mean(self):
        """Midpoints of the box, shape (d,)."""
        return 0.5 * (self.low + self.high)

    @property
    def cov(self):
        """``diag((high - low)^2 / 12)``, shape (d, d)."""
        return np.diag((self.high - self.low) ** 2 / 12.0)

    @property
    def precision(self):
        """Zeros (d, d): the prior carries no information inside the box."""
        return np.zeros((self.low.size, self.low.size))

    def sample(self, n, random_state=None):
        """``n`` draws, shape (n, d).

        Examples
        --------
        >>> UniformPrior([0.0], [2.0]).sample(2, random_state=0).round(3)
        array([[1.098],
               [1.43 ]])
        """
        rng = check_random_state(random_state)
        return self.low + (self.high - self.low) * rng.uniform(size=(n, self.low.size))

    def contains(self, phi):
        """Whether each ``phi`` (..., d) lies in the box (bounds included), shape (...).

        Examples
        --------
        >>> UniformPrior([0.0], [2.0]).contains([[2.0], [2.1]])
        array([ True, False])
        """
        phi = np.asarray(phi)
        return np.all((phi >= self.low) & (phi <= self.high), axis=-1)

    def log_density(self, phi):
        """``-sum log(high - low)`` inside the box, ``-inf`` outside, shape (...).

        Examples
        --------
        >>> UniformPrior([0.0], [2.0]).log_density([[1.0], [3.0]])
        array([-0.69314718,        -inf])
        """
        inside = self.contains(phi)
        return np.where(inside, -np.log(self.high - self.low).sum(), -np.inf)

    def to_dict(self):
        """JSON-ready description (see :func:`prior_from_dict`).

        Examples
        --------
        >>> UniformPrior([0.0], [2.0]).to_dict()
        {'kind': 'uniform', 'low': [0.0], 'high': [2.0]}
        """
        return {"kind": "uniform", "low": self.low.tolist(), "high": self.high.tolist()}

    def __repr__(self):
        return f"UniformPrior(low={self.low.tolist()}, high={self.high.tolist()})"


def prior_from_dict(spec):
    """The prior described by ``spec`` (the output of ``to_dict``).

    Examples
    --------
    >>> from sknlme.models import UniformPrior, prior_from_dict
    >>> prior_from_dict(UniformPrior([0.0], [2.0]).to_dict())
    UniformPrior(low=[0.0], high=[2.0])
    """
    kind = spec.get("kind")
    if kind == "normal":
        return NormalPrior(spec["mean"], spec["cov"])
    if kind == "uniform":
        return UniformPrior(spec["low"], spec["high"])
    raise ValueError(f"unknown prior kind {kind!r}; expected 'normal' or 'uniform'")
