"""Local optimisation that backtracks from non-finite values and reports a stalled start.

SciPy's L-BFGS-B takes as its first trial point on a bounded problem the
projection of ``x0 - g`` onto the box. Where the objective is infinite there
(the exact likelihood of an individual is zero at a box corner: a
proportional error at a zero prediction, an overflow), its line search does
not backtrack: measured on a quadratic with ``+inf`` beyond a face, the run
stopped after 3 evaluations at its start with "CONVERGENCE: RELATIVE
REDUCTION OF F" whether the gradient returned there was NaN, zero or finite
(a finite 1e10 with a finite gradient worked, 1e50 did not). So a run that met
a non-finite value is repeated in a box of half-width ``radius`` around its
current point (1, then divided by 4 while it does not improve), and
continued from each improved point until a run meets only finite values and
ends inside its box.

A start that does not move (``x`` and ``f`` unchanged) while its projected
gradient is not small, or whose value or gradient at the start is not finite,
is marked failed (``exitflag = -1``), never converged.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Watched", "finite_side_gradient", "minimize_safeguarded", "stall_message"]

_MAX_ROUNDS = 12
_FIRST_RADIUS = 1.0
_SHRINK = 4.0
_MIN_RADIUS = 1e-6
_STALL_GRAD = 1e-5  # projected gradient (sup norm) above this * max(1, |f0|): not an optimum


class Watched:
    """An objective that counts its non-finite evaluations and keeps its first gradient.

    Parameters
    ----------
    objective : object
        Has ``__call__(x) -> f`` and ``value_and_gradient(x) -> (f, g)``.

    Examples
    --------
    >>> import numpy as np
    >>> class Log:
    ...     def __call__(self, x):
    ...         return float(-np.log(x[0]))
    ...     def value_and_gradient(self, x):
    ...         return self(x), np.array([-1.0 / x[0]])
    >>> w = Watched(Log())
    >>> with np.errstate(divide="ignore"):
    ...     _ = w.value_and_gradient(np.array([1.0])), w(np.array([0.0]))
    >>> w.n_nonfinite, w.first_grad
    (1, array([-1.]))
    """

    def __init__(self, objective):
        self.objective = objective
        self.n_nonfinite = 0
        self.first_grad = None

    def __call__(self, x):
        f = self.objective(x)
        self.n_nonfinite += not np.isfinite(f)
        return f

    def value_and_gradient(self, x):
        f, g = self.objective.value_and_gradient(x)
        g = np.asarray(g, dtype=float)
        if self.first_grad is None:
            self.first_grad = g.copy()
        self.n_nonfinite += not (np.isfinite(f) and np.all(np.isfinite(g)))
        return f, g


def finite_side_gradient(values, h, f0):
    """Central differences, one-sided where one side of a step is not finite.

    ``values`` (2 n,) are the objective at ``x + h_j e_j`` (even rows) and
    ``x - h_j e_j`` (odd rows); ``f0()`` gives it at ``x`` (called only when
    needed). Where one side is infinite (a zero likelihood), the quotient of
    the finite side; NaN where both are.

    Examples
    --------
    >>> import numpy as np
    >>> finite_side_gradient(np.array([np.inf, 1.0, 3.0, -1.0]), np.array([0.5, 1.0]), lambda: 0.5)
    array([-1.,  2.])
    """
    values = np.asarray(values, dtype=float)
    plus, minus = values[0::2], values[1::2]
    with np.errstate(invalid="ignore"):
        grad = (plus - minus) / (2 * h)
        if np.all(np.isfinite(grad)):
            return grad
        f = f0()
        one_sided = np.where(np.isfinite(plus), (plus - f) / h, (f - minus) / h)
    return np.where(np.isfinite(grad), grad, one_sided)


def _projected(g, x, lb, ub):
    """The gradient with the components that push ``x`` out of the box set to 0."""
    out = (np.isclose(x, lb) & (g > 0)) | (np.isclose(x, ub) & (g < 0))
    return np.where(out, 0.0, g)


def stall_message(result, first_grad, lb, ub):
    """Why a finished start is not a local optimum, or None.

    A start is failed when its value or gradient at the start is not finite,
    or when it ended where it began (``x`` and ``f`` unchanged) while its
    projected gradient there exceeds ``1e-5 * max(1, |f0|)``.

    Examples
    --------
    >>> import numpy as np, pypesto
    >>> r = pypesto.OptimizerResult(id="0", x=np.zeros(1), x0=np.zeros(1), fval=1.0, fval0=1.0)
    >>> stall_message(r, np.array([3.0]), np.full(1, -1.0), np.full(1, 1.0))[:36]
    'did not move from its start (f = 1, '
    >>> stall_message(r, np.array([3.0]), np.full(1, 0.0), np.full(1, 1.0)) is None
    True
    """
    f0 = result.fval0
    if f0 is None or not np.isfinite(f0) or first_grad is None:
        return f"non-finite objective at the start (f = {f0})"
    if not np.all(np.isfinite(first_grad)):
        return f"non-finite gradient at the start (f = {f0:.6g})"
    x, x0 = np.asarray(result.x, dtype=float), np.asarray(result.x0, dtype=float)
    pg = float(np.max(np.abs(_projected(first_grad, x0, lb, ub)), initial=0.0))
    moved = not np.allclose(x, x0, rtol=1e-10, atol=1e-12)
    decreased = result.fval < f0 - 1e-12 * max(1.0, abs(f0))
    if not moved and not decreased and pg > _STALL_GRAD * max(1.0, abs(f0)):
        return f"did not move from its start (f = {f0:.6g}, projected gradient {pg:.3g})"
    return None


def minimize_safeguarded(run, objective, lb, ub, x0):
    """Local optimisation from ``x0`` that backtracks where the objective is not finite.

    Parameters
    ----------
    run : callable
        ``run(objective, lb, ub, x0) -> pypesto.OptimizerResult``: one local
        optimisation of ``objective`` in the box ``[lb, ub]``.
    objective : object
        Has ``__call__`` and ``value_and_gradient``.
    lb, ub : ndarray
        Bounds.
    x0 : ndarray
        Start point.

    Returns
    -------
    pypesto.OptimizerResult
        The last run's result at the best point found, with ``x0``/``fval0``
        of the start, evaluation counts of all runs, and ``exitflag = -1`` when
        the start stalled (see :func:`stall_message`).

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.population._multistart import default_optimizer, make_problem
    >>> class Wall:  # +inf beyond x = 1, minimum at 0.8
    ...     def __call__(self, x):
    ...         return np.inf if np.any(x > 1) else float(np.sum(50 * (x - 0.8) ** 2))
    ...     def value_and_gradient(self, x):
    ...         return self(x), 100 * (x - 0.8)
    >>> def run(obj, lb, ub, x0):
    ...     return default_optimizer().minimize(problem=make_problem(obj, ["a", "b"], lb, ub),
    ...                                         x0=x0, id="0")
    >>> res = minimize_safeguarded(run, Wall(), np.full(2, -10.0), np.full(2, 10.0),
    ...                            np.full(2, -5.0))
    >>> np.round(res.x, 4), res.exitflag != -1
    (array([0.8, 0.8]), True)
    """
    x0 = np.asarray(x0, dtype=float)
    x, fx, radius = x0, None, np.inf
    first, counts, n_nonfinite = None, {"n_fval": 0, "n_grad": 0}, 0
    for _ in range(_MAX_ROUNDS):
        lo, hi = (lb, ub)
        if np.isfinite(radius):
            lo, hi = np.maximum(lb, x - radius), np.minimum(ub, x + radius)
        watched = Watched(objective)
        result = run(watched, lo, hi, x)
        first = first or (result, watched.first_grad)
        for key in counts:
            counts[key] += result.get(key) or 0
        n_nonfinite += watched.n_nonfinite
        fx = result.fval0 if fx is None else fx
        improved = (
            result.x is not None
            and result.fval is not None
            and np.isfinite(result.fval)
            and (fx is None or not np.isfinite(fx) or result.fval < fx)
        )
        if improved:
            x, fx = np.asarray(result.x, dtype=float), float(result.fval)
        inner = (lo > lb) | (hi < ub)  # faces of the trust box that are not bounds
        on_face = np.any(inner & (np.isclose(x, lo) | np.isclose(x, hi)))
        start_bad = first[1] is None or not np.all(np.isfinite(first[1]))
        if (watched.n_nonfinite == 0 and not on_face) or start_bad:
            break
        if not improved:
            radius = _FIRST_RADIUS if np.isinf(radius) else radius / _SHRINK
            if radius < _MIN_RADIUS:
                break
    result.x, result.fval = x, fx
    result.x0, result.fval0 = x0, first[0].fval0
    result.update(counts)
    if n_nonfinite:
        result.message = f"{result.message} ({n_nonfinite} non-finite evaluations backtracked)"
    why = stall_message(result, first[1], lb, ub)
    if why is not None:
        result.exitflag, result.message = -1, why
    return result
