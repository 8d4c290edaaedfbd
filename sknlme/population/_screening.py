"""Multistart on a random subset of the individuals, finished on all of them.

Every start of the amortized multistart costs a pass over all individuals'
draws per objective call, so at N = 10,000 its 20 starts took 6 s of a 48 s
fit (0.3 s each), and at a million individuals they would take 10 minutes.
Where the local optima lie is a property of the population, which a random
subset of a few thousand individuals shows as well: the starts run there, and
only the best distinct end points are re-optimised on every individual (from
near their optimum, in few iterations).
"""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state

from ._multistart import distinct_optima, run_multistart, successful_starts
from ._resample import subset_objective

__all__ = ["screened_multistart"]

SCREEN_ROWS = 2000  # individuals the starts run on
N_FINISH = 4  # distinct best end points finished on all individuals


def screened_multistart(
    objective,
    x_names,
    lb,
    ub,
    startpoints,
    random_state=None,
    max_rows=SCREEN_ROWS,
    n_finish=N_FINISH,
    **multistart,
):
    """:func:`run_multistart`, its starts screened on ``max_rows`` random individuals.

    With at most ``max_rows`` individuals this is :func:`run_multistart`.
    Otherwise every start runs on the objective restricted to ``max_rows``
    individuals drawn without replacement, and the best ``n_finish`` distinct
    end points (:func:`distinct_optima`) start the optimisations on all
    individuals, whose results are returned.

    Parameters
    ----------
    objective : PopulationObjective
    x_names : list of str
    lb, ub : ndarray of shape (n_x,)
    startpoints : ndarray of shape (n_starts, n_x)
    random_state : int, RandomState or None
        Chooses the screening individuals.
    max_rows, n_finish : int
    **multistart
        ``optimizer``, ``n_jobs``, ``verbose`` of :func:`run_multistart`.

    Returns
    -------
    pypesto.Result
        The optimisations on all individuals (``n_finish`` starts or fewer
        when screening ran, else one per start point).

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.population import PopulationObjective
    >>> from sknlme.population._screening import screened_multistart
    >>> rng = np.random.default_rng(0)
    >>> phi = rng.normal(1.0, 0.5, size=(300, 20, 1)) + rng.normal(0, 0.3, size=(300, 1, 1))
    >>> obj = PopulationObjective(phi, np.zeros((300, 20)), ["a"])
    >>> lb, ub = obj.bounds
    >>> starts = lb + rng.uniform(size=(6, 2)) * (ub - lb)
    >>> res = screened_multistart(obj, obj.x_names, lb, ub, starts, random_state=0, max_rows=100)
    >>> full = screened_multistart(obj, obj.x_names, lb, ub, starts)
    >>> len(res.optimize_result.list) <= 4, len(full.optimize_result.list)
    (True, 6)
    >>> bool(np.allclose(res.optimize_result.list[0].x, full.optimize_result.list[0].x, atol=1e-4))
    True
    """
    if objective.n <= max_rows:
        return run_multistart(objective, x_names, lb, ub, startpoints, **multistart)
    rng = check_random_state(random_state)
    rows = np.sort(rng.choice(objective.n, size=int(max_rows), replace=False))
    screen = run_multistart(
        subset_objective(objective, rows), x_names, lb, ub, startpoints, **multistart
    )
    ok, _ = successful_starts(screen, stacklevel=3)
    finish = np.array([r.x for r in distinct_optima(ok)[: int(n_finish)]])
    return run_multistart(objective, x_names, lb, ub, finish, **multistart)
