"""Objectives on resampled individuals, and fast re-optimisation on the cached draws.

An individual's term of the objective depends only on its own draws, data and
covariates, so a bootstrap sample (rows with repeats) or a leave-one-out
sample is the same objective on a subset of the rows: no new draws, no new
network or likelihood set-up, only a local re-optimisation from the estimate.
"""

from __future__ import annotations

import copy

import numba
import numpy as np
from joblib import Parallel, delayed
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from ._fixed_point import minimize_fixed_proposal
from ._importance import ImportanceObjective
from ._multistart import _threadsafe_numba
from ._objective import PopulationObjective

__all__ = ["refit_rows", "subset_objective"]

# per-row attributes of each objective: (name, how to index)
_AMORTIZED_ROWS = ("_draws", "log_offsets", "covariates", "group_codes")
_IMPORTANCE_ROWS = (
    "covariates",
    "group_codes",
    "_ids",
    "_keys",
    "_lam",
    "_eta",
    "_lam_rf",
    "_std",
    "_log_t0",
    "_pop_std",
)


def _take(value, rows):
    if value is None:
        return None
    if hasattr(value, "iloc"):
        return value.iloc[rows]
    return np.asarray(value)[rows]


def subset_objective(objective, rows):
    """The objective restricted to the individuals at positions ``rows`` (repeats allowed).

    Parameters
    ----------
    objective : PopulationObjective or ImportanceObjective
        An objective of a fit (``result_.objective``).
    rows : array-like of int
        Row positions; a bootstrap sample repeats rows.

    Returns
    -------
    objective : same type
        Same layout, bounds and draws of the chosen individuals.

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.population import PopulationObjective
    >>> from sknlme.population._resample import subset_objective
    >>> phi = np.random.default_rng(0).normal(size=(5, 20, 1))
    >>> obj = PopulationObjective(phi, np.zeros((5, 20)), ["a"])
    >>> sub = subset_objective(obj, [0, 0, 3])
    >>> x = obj.pack()
    >>> ll = obj.individual_loglik(x)
    >>> bool(np.allclose(sub.individual_loglik(x), ll[[0, 0, 3]]))
    True
    """
    rows = np.asarray(rows, dtype=np.intp).reshape(-1)
    n = objective.n
    if rows.size == 0 or rows.min() < 0 or rows.max() >= n:
        raise ValueError(f"rows must be non-empty positions in [0, {n}), got {rows}")
    new = copy.copy(objective)
    if isinstance(objective, PopulationObjective):
        names = _AMORTIZED_ROWS
    elif isinstance(objective, ImportanceObjective):
        names = _IMPORTANCE_ROWS
        new._padded = objective._padded.take(rows)
        new._covs = _take(objective._covs, rows)
    else:
        raise TypeError(f"cannot resample a {type(objective).__name__}")
    for name in names:
        if hasattr(objective, name):
            value = _take(getattr(objective, name), rows)
            if isinstance(value, np.ndarray):
                value = np.ascontiguousarray(value)
            setattr(new, name, value)
    new.n = rows.size
    new._cache = (None, None)
    return new


def _optimize(objective, x0, lb, ub):
    """Local L-BFGS-B from ``x0`` with the analytic (or batched) gradient.

    The importance likelihood with random effects goes by re-centred fixed-proposal
    surrogates instead (its proposals move with the parameters, so a gradient is
    ``2 n_x + 1`` likelihood passes: theophylline took about 10 s per replicate).
    A single surrogate at the estimate does not do: its Taylor expansion in the
    parameters without random effect has saddles away from its centre, and on
    theophylline L-BFGS-B followed them (log ke from -2.43 to -3.96).
    """
    if isinstance(objective, ImportanceObjective) and objective.re.size:
        res = minimize_fixed_proposal(objective, lb, ub, x0)
        return np.asarray(res.x, dtype=float), float(res.fval), res.exitflag != -1

    def fun(x):
        f, g = objective.value_and_gradient(x)
        if not np.isfinite(f):
            return np.inf, np.zeros_like(x)
        return f, g

    res = minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=list(zip(lb, ub, strict=True)))
    return res.x, float(res.fun), bool(res.success)


def _chunk(objective, x0, lb, ub, row_sets, serial):
    previous = numba.get_num_threads()
    if serial:
        numba.set_num_threads(1)  # thread-local: parallel replicates, serial kernels
    try:
        return [_optimize(subset_objective(objective, rows), x0, lb, ub) for rows in row_sets]
    finally:
        numba.set_num_threads(previous)


def refit_rows(objective, x0, row_sets, n_jobs=None):
    """Re-optimise ``objective`` on each set of rows, starting at ``x0``.

    Parameters
    ----------
    objective : PopulationObjective or ImportanceObjective
    x0 : array-like of shape (n_x,)
        Start of every re-optimisation (the estimate).
    row_sets : list of array-like of int
        Rows of each replicate.
    n_jobs : int, default=None
        joblib workers (threads where numba's threading layer allows them,
        else processes); replicates go to them in equal chunks.

    Returns
    -------
    x : ndarray of shape (len(row_sets), n_x)
    fval : ndarray of shape (len(row_sets),)
    success : ndarray of bool

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.population import PopulationObjective
    >>> from sknlme.population._resample import refit_rows
    >>> phi = np.random.default_rng(0).normal(size=(5, 20, 1))
    >>> obj = PopulationObjective(phi, np.zeros((5, 20)), ["a"])
    >>> x, f, ok = refit_rows(obj, obj.pack(), [[0, 1, 2, 3, 4], [0, 0, 1, 1, 2]])
    >>> x.shape, bool(ok.all())
    ((2, 2), True)
    """
    x0 = np.asarray(x0, dtype=float)
    lb, ub = (np.asarray(b, dtype=float) for b in objective.bounds)
    x0 = np.clip(x0, lb, ub)
    sets = [np.asarray(r, dtype=np.intp) for r in row_sets]
    n_jobs = 1 if n_jobs is None else int(n_jobs)
    if n_jobs < 0:
        import os

        n_jobs = max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    # L-BFGS-B calls BLAS on n_x-sized vectors; OpenBLAS's thread pool made each call
    # 3.6 ms instead of ~0.1 ms (theophylline, amortized, n_x = 7, load 9 on 2 cores: 29
    # of 35 s of 100 replicates were in scipy's setulb). Set once here, on the calling
    # thread (the setting is process-wide: per-thread enter/exit would race); loky's
    # process workers already get cpu_count // n_jobs BLAS threads from joblib.
    with threadpool_limits(limits=1, user_api="blas"):
        if n_jobs == 1 or len(sets) < 2:
            out = _chunk(objective, x0, lb, ub, sets, serial=False)
        else:
            prefer = "threads" if _threadsafe_numba(objective, x0) else "processes"
            chunks = [c for c in np.array_split(np.arange(len(sets)), n_jobs) if c.size]
            parts = Parallel(n_jobs=n_jobs, prefer=prefer)(
                delayed(_chunk)(objective, x0, lb, ub, [sets[i] for i in c], True) for c in chunks
            )
            out = [r for part in parts for r in part]
    x = np.array([r[0] for r in out])
    return x, np.array([r[1] for r in out]), np.array([r[2] for r in out])
