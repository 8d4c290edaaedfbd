"""Gradients by central differences evaluated as one batch of parameter vectors."""

from __future__ import annotations

import numpy as np

from .._numerics import central_points
from ._safeguard import finite_side_gradient

__all__ = ["CentralGradient"]


class CentralGradient:
    """Mixin: ``gradient`` and ``value_and_gradient`` from a batched ``_values(xs)``.

    The host has ``_values(xs) -> (b,)`` negative log-likelihoods at the rows
    of ``xs``, ``__call__``, a one-entry value cache ``_cache = (key, value)``
    and ``rel_step``. The ``2 n_x`` points (and the value, when not cached)
    go to ``_values`` together, as the cost of an evaluation at small ``n`` is
    mostly fixed overhead.
    """

    def gradient(self, x):
        """Central-difference gradient at free ``x``, shape ``(n_x,)``, in one batch.

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.models import LinearGaussian
        >>> from sknlme.posterior import ExactGaussianPosterior
        >>> from sknlme.population import ImportanceObjective, PopulationObjective
        >>> model = LinearGaussian(n_params=1, sigma=0.3)
        >>> X, _ = model.simulate(4, random_state=0)
        >>> draws = ExactGaussianPosterior(model).fit().sample(X, 20, random_state=0)
        >>> base = PopulationObjective(draws, np.zeros((4, 20)), ["theta0"])
        >>> obj = ImportanceObjective(base, model, X, 50, random_state=0)
        >>> x = obj.pack(beta=[0.0], cov=[[1.0]])
        >>> obj.gradient(x).shape
        (2,)
        """
        return self._gradient(np.asarray(x, dtype=float).reshape(-1), with_value=False)[1]

    def _gradient(self, x, with_value):
        """``(value or None, gradient)``; the value joins the batch when not cached."""
        if not np.all(np.isfinite(x)):
            return (np.nan if with_value else None), np.full(x.size, np.nan)
        xs, h = central_points(x, self.rel_step)
        value = None
        if with_value:
            key = x.tobytes()
            if self._cache[0] == key:
                value = self._cache[1]
            else:
                xs = np.vstack([xs, x[None]])
        f = self._values(xs)
        if with_value and value is None:
            value = float(f[-1])
            self._cache = (key, value)
        # a zero likelihood on one side of a step: the other side's quotient
        return value, finite_side_gradient(f[: 2 * x.size], h, lambda: self(x))

    def value_and_gradient(self, x):
        """Objective value and gradient over the free parameters (one batch).

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.models import LinearGaussian
        >>> from sknlme.posterior import ExactGaussianPosterior
        >>> from sknlme.population import ImportanceObjective, PopulationObjective
        >>> model = LinearGaussian(n_params=1, sigma=0.3)
        >>> X, _ = model.simulate(4, random_state=0)
        >>> draws = ExactGaussianPosterior(model).fit().sample(X, 20, random_state=0)
        >>> base = PopulationObjective(draws, np.zeros((4, 20)), ["theta0"])
        >>> obj = ImportanceObjective(base, model, X, 50, random_state=0)
        >>> x = obj.pack(beta=[0.0], cov=[[1.0]])
        >>> f, g = obj.value_and_gradient(x)
        >>> bool(f == obj(x)), g.shape
        (True, (2,))
        """
        return self._gradient(np.asarray(x, dtype=float).reshape(-1), with_value=True)
