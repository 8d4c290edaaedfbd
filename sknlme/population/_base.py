"""The protocol shared by the population objectives.

Both objectives (:class:`~sknlme.population.PopulationObjective`, the amortized
likelihood, and :class:`~sknlme.population.ImportanceObjective`, the exact one)
carry a :class:`Parametrization` (``layout``) and the covariate matrix, and
answer the same questions of a free parameter vector ``x``: the value and
gradient of the negative log-likelihood, per-individual log-likelihoods,
importance weights and conditional means. The estimator, the result object,
the multistart and the profiles use only this protocol.
"""

from __future__ import annotations

import numpy as np

from . import _kernels

__all__ = ["BaseObjective", "population_means"]


def population_means(beta, B, covariates):
    """Means ``m_i = beta + B^T c_i`` of the individual parameters, shape (n, d).

    Plain loops, not BLAS: a threaded BLAS on (n, p) x (p, d) cost up to 30 ms at
    N = 100,000 on a loaded machine, more than a whole kernel pass; row ``i``
    depends on ``c_i`` alone (bit for bit).

    Parameters
    ----------
    beta : ndarray of shape (d,)
    B : ndarray of shape (p, d)
    covariates : ndarray of shape (n, p)

    Returns
    -------
    ndarray of shape (n, d)

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.population import population_means
    >>> population_means(np.array([1.0, 2.0]), np.array([[0.5, 0.0]]), np.array([[2.0], [0.0]]))
    array([[2., 2.],
           [1., 2.]])
    """
    return _kernels.means(
        np.ascontiguousarray(beta, dtype=float),
        np.ascontiguousarray(covariates, dtype=float),
        np.ascontiguousarray(B, dtype=float),
    )


class BaseObjective:
    """Layout forwarding and population means of a population objective.

    Subclasses set ``layout`` (a ``Parametrization``), ``covariates`` (n, p)
    and ``n``, and implement ``value_and_gradient``, ``__call__``,
    ``gradient``, ``individual_loglik``, ``weights`` and ``conditional_means``.
    ``exact_likelihood`` says whether the value is the exact negative
    log-likelihood (comparable across models and tools) or one up to a
    constant that depends on the data (the amortized objective).

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.population import PopulationObjective
    >>> obj = PopulationObjective(np.zeros((3, 4, 1)), np.zeros((3, 4)), ["a"])
    >>> obj.x_names, obj.n_x
    (['a', 'log_var(a)'], 2)
    """

    exact_likelihood = False

    # ------------------------------------------------------------ layout
    @property
    def x_names_full(self):
        """All population parameter names (fixed effects, covariate effects, covariance).

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.population import PopulationObjective
        >>> obj = PopulationObjective(np.zeros((3, 4, 1)), np.zeros((3, 4)), ["a"],
        ...                           fixed={"a": 0.0})
        >>> obj.x_names_full
        ['a', 'log_var(a)']
        """
        return list(self.layout.x_names_full)

    @property
    def x_names(self):
        """Names of the free parameters.

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.population import PopulationObjective
        >>> obj = PopulationObjective(np.zeros((3, 4, 1)), np.zeros((3, 4)), ["a"],
        ...                           fixed={"a": 0.0})
        >>> obj.x_names
        ['log_var(a)']
        """
        return list(self.layout.x_names)

    @property
    def n_x(self):
        """Number of free parameters.

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.population import PopulationObjective
        >>> PopulationObjective(np.zeros((3, 4, 2)), np.zeros((3, 4)), ["a", "b"]).n_x
        4
        """
        return self.layout.n_x

    @property
    def bounds(self):
        """``(lb, ub)`` arrays over the free parameters.

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.population import PopulationObjective
        >>> lb, ub = PopulationObjective(np.zeros((3, 4, 1)), np.zeros((3, 4)), ["a"]).bounds
        >>> lb.shape, bool(np.all(lb < ub))
        ((2,), True)
        """
        return self.layout.bounds

    def x_full(self, x_free):
        """Full parameter vector from the free one (fixed entries filled in).

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.population import PopulationObjective
        >>> obj = PopulationObjective(np.zeros((3, 4, 1)), np.zeros((3, 4)), ["a"],
        ...                           fixed={"a": 0.5})
        >>> obj.x_full([-1.0])
        array([ 0.5, -1. ])
        """
        return self.layout.x_full(x_free)

    def x_free(self, x_full):
        """Free entries of a full parameter vector.

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.population import PopulationObjective
        >>> obj = PopulationObjective(np.zeros((3, 4, 1)), np.zeros((3, 4)), ["a"],
        ...                           fixed={"a": 0.5})
        >>> obj.x_free([0.5, -1.0])
        array([-1.])
        """
        return self.layout.x_free(x_full)

    def unpack(self, x):
        """``dict(beta=(d,), B=(p, d), cov=(d, d))`` (floors included) for free ``x``.

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.population import PopulationObjective
        >>> obj = PopulationObjective(np.zeros((3, 4, 1)), np.zeros((3, 4)), ["a"])
        >>> obj.unpack([1.0, np.log(4.0)])["cov"]
        array([[4.]])
        """
        return self.layout.unpack(x)

    def pack(self, beta=None, B=None, cov=None, group_var=None, df=None):
        """Free vector from ``beta``, ``B`` and ``cov`` (zeros / identity where omitted).

        ``group_var`` (G, d) and ``df`` fill group variances and ``log_df`` where
        the layout has them (see ``Parametrization.pack``).

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.population import PopulationObjective
        >>> obj = PopulationObjective(np.zeros((3, 4, 1)), np.zeros((3, 4)), ["a"])
        >>> obj.pack(beta=[1.0], cov=[[1.0]])
        array([1., 0.])
        """
        return self.layout.pack(beta=beta, B=B, cov=cov, group_var=group_var, df=df)

    # ------------------------------------------------------------ evaluation
    def means(self, x):
        """Population means ``m_i`` of every individual at free ``x``, shape (n, d).

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.population import PopulationObjective
        >>> obj = PopulationObjective(np.zeros((2, 4, 1)), np.zeros((2, 4)), ["a"],
        ...                           covariates=np.array([[1.0], [-1.0]]),
        ...                           covariate_effects={"x0": ["a"]})
        >>> obj.means(obj.pack(beta=[1.0], B=[[0.5]]))
        array([[1.5],
               [0.5]])
        """
        beta, B, _ = self.layout.factors(x)
        return population_means(beta, B, self.covariates)

    def __call__(self, x):
        """Negative log-likelihood at free ``x``.

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.population import PopulationObjective
        >>> obj = PopulationObjective(np.zeros((2, 4, 1)), np.zeros((2, 4)), ["a"])
        >>> bool(np.isfinite(obj(obj.pack())))
        True
        """
        return self.value_and_gradient(x)[0]

    def gradient(self, x):
        """Gradient of the negative log-likelihood at free ``x``, shape ``(n_x,)``.

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.population import PopulationObjective
        >>> obj = PopulationObjective(np.zeros((2, 4, 1)), np.zeros((2, 4)), ["a"])
        >>> obj.gradient(obj.pack()).shape
        (2,)
        """
        return self.value_and_gradient(x)[1]

    def value_and_gradient(self, x):  # pragma: no cover - implemented by subclasses
        """Objective value and gradient over the free parameters.

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.population import PopulationObjective
        >>> obj = PopulationObjective(np.zeros((2, 4, 1)), np.zeros((2, 4)), ["a"])
        >>> f, g = obj.value_and_gradient(obj.pack())
        >>> bool(f == obj(obj.pack())), g.shape
        (True, (2,))
        """
        raise NotImplementedError

    def to_pypesto_problem(self):
        """A ``pypesto.Problem`` over the free parameters (see ``make_problem``).

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.population import PopulationObjective
        >>> obj = PopulationObjective(np.zeros((2, 4, 1)), np.zeros((2, 4)), ["a"])
        >>> obj.to_pypesto_problem().x_names
        ['a', 'log_var(a)']
        """
        from ._multistart import make_problem

        return make_problem(self)
