"""A posterior that needs no training: per-individual Laplace approximations.

For a model with an observation likelihood, each individual's posterior
under the training prior is approximated by ``N(mode, H^-1)`` at its mode
(:func:`laplace_approximations`). It stands in for a network where none is
trained (a new model, a new design): the population estimator's importance
likelihood corrects the approximation exactly, so the fit is the exact
maximum likelihood; only the amortized speed is lost (a mode search per
individual instead of a network pass).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import _fit_context

from ._exact import ExactGaussianPosterior
from ._laplace import laplace_approximations

__all__ = ["LaplacePosterior"]


class LaplacePosterior(ExactGaussianPosterior):
    """Gaussian (Laplace) approximations of the individual posteriors, no training.

    Parameters
    ----------
    model : Model
        A model with an observation likelihood (``model.has_likelihood``).
    n_samples : int, default=100
        Draws per individual returned by :meth:`transform`.
    cov_scale : float, default=1.0
        Factor on every covariance (``> 1`` widens the proposals).
    random_state : int, RandomState or None, default=None
        Seed of :meth:`transform`.

    Attributes
    ----------
    model_ : Model
        The model (set by :meth:`fit`, which does no training).

    Examples
    --------
    >>> from sknlme.datasets import load_theophylline
    >>> from sknlme.models import OneCompartmentOral
    >>> from sknlme.posterior import LaplacePosterior
    >>> post = LaplacePosterior(OneCompartmentOral()).fit()
    >>> draws = post.sample(load_theophylline(), 20, random_state=0)
    >>> draws.shape
    (12, 20, 4)
    """

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X=None, y=None):
        """Check the model; there is nothing to train.

        Examples
        --------
        >>> from sknlme.models import LinearGaussian
        >>> from sknlme.posterior import LaplacePosterior
        >>> LaplacePosterior(LinearGaussian(n_params=1)).fit().model_.n_params
        1
        """
        if not getattr(self.model, "has_likelihood", False):
            raise TypeError(
                f"model {self.model!r} has no observation likelihood; LaplacePosterior needs "
                "one (train an AmortizedPosterior instead)"
            )
        kind = getattr(getattr(self.model, "prior", None), "kind", "normal")
        if kind != "normal":  # its Gaussian posteriors are under a normal training prior
            raise ValueError(
                f"LaplacePosterior needs a normal training prior; "
                f"model {self.model!r} has a {kind} "
                "one (train an AmortizedPosterior under it)"
            )
        self.model_ = self.model
        self.n_fit_calls_ = getattr(self, "n_fit_calls_", 0) + 1
        return self

    def _moments(self, X):
        study = self.model_.prepare(X, require_values=False)
        mode, cov, ok = laplace_approximations(self.model_, study)
        if not ok.all():
            bad = [repr(study.ids[i]) for i in np.flatnonzero(~ok)[:5]]
            warnings.warn(
                f"the posterior mode search did not converge for individual(s) "
                f"{', '.join(bad)}{' and more' if (~ok).sum() > 5 else ''}",
                RuntimeWarning,
                stacklevel=3,
            )
        return mode, np.linalg.cholesky(cov * float(self.cov_scale)), study
