"""Per-individual quantities of an importance objective from its weighted draws."""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp

__all__ = ["WeightedDraws"]


class WeightedDraws:
    """Log-likelihood terms, weights and conditional means from ``self.draws(x)``.

    A mixin of :class:`ImportanceObjective`: ``draws(x)`` gives proposal draws
    (n, K, d) and their log importance weights (n, K).
    """

    def individual_loglik(self, x):
        """Per-individual estimates ``log L_i``, shape (n,).

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
        >>> bool(np.isclose(obj.individual_loglik(x).sum(), -obj(x)))
        True
        """
        return logsumexp(self.draws(x)[1], axis=1) - np.log(self.K)

    def weights(self, x):
        """Normalised importance weights, shape (n, K).

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
        >>> np.allclose(obj.weights(x).sum(axis=1), 1.0)
        True
        """
        log_w = self.draws(x)[1]
        return np.exp(log_w - logsumexp(log_w, axis=1, keepdims=True))

    def conditional_means(self, x):
        """``E[phi_i | y_i, theta]`` by the weighted proposal draws, shape (n, d).

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
        >>> obj.conditional_means(x).shape
        (4, 1)
        """
        phi, log_w = self.draws(x)
        w = np.exp(log_w - logsumexp(log_w, axis=1, keepdims=True))
        return np.einsum("nk,nkd->nd", w, phi)
