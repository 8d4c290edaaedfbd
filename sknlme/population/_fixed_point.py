"""Optimisation of the importance likelihood by re-centred fixed-proposal surrogates.

Each outer iteration builds a :class:`FixedProposalSurrogate` at the current
point (one batch of ``1 + 2 f + f (f - 1)`` likelihood passes), minimises
it with the analytic gradient inside a trust box, and moves the centre there,
until the step is below ``xtol`` (the proposals then sit at the optimum they
produce: a fixed point, as NONMEM's IMP and Monolix's importance sampling
iterate). A step whose exact value (the next surrogate's value at its own
centre) is worse than the centre's by more than ``accept`` is undone and the
trust box shrunk. Measured on 100 simulated one-compartment oral subjects
(shipped network, 4 starts): the central-difference refinement needed 2,840
objective calls of ``2 n_x + 1 = 15`` passes; here each start needs 3-8 outer
iterations of 3 passes (see the closing notes of the speed issue).
"""

from __future__ import annotations

import time

import numpy as np
import pypesto
from threadpoolctl import threadpool_limits

from ._multistart import default_optimizer, make_problem
from ._rescoring import mc_standard_errors
from ._safeguard import minimize_safeguarded
from ._surrogate import FixedProposalSurrogate
from ._taylor import negligible_random_effects

__all__ = ["expanded_surrogate", "minimize_fixed_proposal", "run_fixed_proposal"]

MAX_OUTER = 30
XTOL = 1e-3  # largest absolute step in x that ends the iteration
_RADIUS = 2.0  # trust box half-width of x entries (absolute: see _radii)
_FIXED_RADIUS = 0.5  # ... of those that move parameters without a random effect
_ACCEPT = 0.1  # a re-centred value may exceed the old one by this (MC noise) ...
# ... or by this many SDs of the difference of two independent importance estimates
# (sqrt(2) x the centre's total MC SE): with 100 draws per individual the objective of a
# 100-subject two-compartment study had an MC SE of about 1-2, so a threshold of 0.1
# rejected steps for noise: every start ended after 5 rejected surrogates in a row (35 of
# its 58 surrogates), at values 40 apart
_ACCEPT_SDS = 2.0
# Two re-centrings that lower the value by less than this end the iteration at the
# best centre. Measured on theophylline in ug/kg (shipped network): the variance of
# log ke, at 0 in the exact fit, crawled down by 0.1 in log per re-centring (as EM
# does at a boundary) while the value rose by 0.004 per step; with the step rule alone
# no start settled in 30 re-centrings. (A threshold at the MC noise instead, 3-6 on a
# 100-subject two-compartment study, saved 10 % of its fit time but stopped theophylline's
# variance of log ke short of its boundary, where the Hessian then had no positive SE.)
FTOL = 1e-3
# A start whose centre comes this close (largest absolute difference in x) to the fixed
# point of an earlier start joins it: from there both follow the same deterministic map
# (the surrogate at a centre depends on the centre alone, common random numbers).
# Measured on a 100-subject two-compartment study with repeated doses (shipped network,
# 4 starts refined, Q and V2 without random effects): 66 surrogates of 13 likelihood
# passes each, 53 of the fit's 72 s, most of them later starts re-walking the first
# one's path to the same optimum.
MERGE_TOL = 1e-2


def _radii(objective, x):
    """Trust-box half-widths: smaller where ``x`` moves a parameter without random effect."""
    radius = np.full(x.size, _RADIUS)
    fe = set(objective.fe.tolist())
    names = objective.layout.param_names
    for t, name in enumerate(objective.x_names):
        target = name.split(":", 1)[1] if ":" in name else name
        if target in names and names.index(target) in fe:
            radius[t] = _FIXED_RADIUS
    # absolute widths, not relative to max(1, |x|): the fixed effects are log-scale, so
    # a study in other units (shifted x) then takes the same path; relative widths moved
    # a two-compartment fit in min/ug by 0.02 from its fit in h/mg
    return radius


def _inner(surrogate, x, lo, hi, optimizer, start_id):
    def run(obj, lo_, hi_, x_):
        # entries with equal bounds are held fixed (a profile step); pyPESTO wants lb < ub
        fixed = np.flatnonzero(lo_ == hi_)
        lo_, hi_ = lo_.copy(), hi_.copy()
        lo_[fixed], hi_[fixed] = lo_[fixed] - 1.0, hi_[fixed] + 1.0
        problem = make_problem(obj, surrogate.x_names, lo_, hi_)
        if fixed.size:
            problem.fix_parameters(fixed.tolist(), x_[fixed].tolist())
        options = pypesto.optimize.OptimizeOptions(allow_failed_starts=True, report_sres=False)
        return optimizer.minimize(
            problem=problem, x0=x_[problem.x_free_indices], id=start_id, optimize_options=options
        )

    # one BLAS thread: scipy's L-BFGS-B on 7 parameters took 7 ms per evaluation with
    # OpenBLAS's 2 threads on a loaded 2-core machine, 0.25 ms with one
    with threadpool_limits(limits=1, user_api="blas"):
        return minimize_safeguarded(run, surrogate, lo, hi, x)


def minimize_fixed_proposal(
    objective, lb, ub, x0, optimizer=None, start_id="0", return_surrogate=False, known=()
):
    """Minimise an importance objective from ``x0`` by re-centred surrogates.

    Parameters
    ----------
    objective : ImportanceObjective
        With at least one random effect.
    lb, ub : ndarray of shape (n_x,)
        Bounds; an entry with ``lb == ub`` is held fixed there (a profile step).
    x0 : ndarray of shape (n_x,)
        Start.
    optimizer : pypesto.optimize.Optimizer, default=None
        Inner optimiser (:func:`default_optimizer` when None).
    start_id : str, default="0"
    return_surrogate : bool, default=False
        Also return the surrogate centred at the result (it is not stored in
        the result: it holds all draws).
    known : sequence of pypesto.OptimizerResult, default=()
        Fixed points of earlier starts: once the centre is within
        ``MERGE_TOL`` of one of them, the start ends there (message
        ``"joined start <id>"``) with that start's point and value.

    Returns
    -------
    pypesto.OptimizerResult
        ``x``, ``fval`` (the importance objective there), ``x0``/``fval0``,
        ``n_fval``/``n_grad`` (surrogate calls), ``exitflag`` -1 with the
        reason when a surrogate failed or the iteration did not settle within
        ``MAX_OUTER`` steps, and the outer iterations in ``message``; with
        ``return_surrogate``, ``(result, surrogate)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme.population import ImportanceObjective, PopulationObjective
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(30, random_state=0)
    >>> draws = ExactGaussianPosterior(model).fit().sample(X, 50, random_state=0)
    >>> base = PopulationObjective(draws, np.zeros((30, 50)), ["theta0"])
    >>> obj = ImportanceObjective(base, model, X, 200, random_state=0)
    >>> res = minimize_fixed_proposal(obj, *obj.bounds, obj.pack(beta=[0.0], cov=[[1.0]]))
    >>> from scipy.optimize import minimize
    >>> def exact(v):  # the exact marginal likelihood at beta, log variance
    ...     return -model.marginal_loglik(X, v[:1], np.exp(v[1:]).reshape(1, 1)).sum()
    >>> ml = minimize(exact, [0.0, 0.0]).x
    >>> bool(np.allclose(res.x, ml, atol=0.05)), res.exitflag != -1
    (True, True)
    """
    t0 = time.perf_counter()
    optimizer = default_optimizer() if optimizer is None else optimizer
    lb, ub = np.asarray(lb, dtype=float), np.asarray(ub, dtype=float)
    x = np.clip(np.asarray(x0, dtype=float), lb, ub)
    counts = {"n_fval": 0, "n_grad": 0}
    surrogate = expanded_surrogate(objective, x)
    fx = fval0 = surrogate(x)
    noise = _noise(surrogate, x)
    shrink, message, exitflag = 1.0, None, 0
    best_x, best_f, best_sur, stalled = x, fx, surrogate, 0
    for it in range(1, MAX_OUTER + 1):
        if not np.isfinite(fx):
            message, exitflag = f"non-finite objective at the start (f = {fx})", -1
            break
        radius = shrink * _radii(surrogate, x)
        lo, hi = np.maximum(lb, x - radius), np.minimum(ub, x + radius)
        inner = _inner(surrogate, x, lo, hi, optimizer, start_id)
        for key in counts:
            counts[key] += inner.get(key) or 0
        if inner.exitflag == -1 or inner.x is None:
            message, exitflag = f"surrogate {it}: {inner.message}", -1
            break
        x_new = np.asarray(inner.x, dtype=float)
        step = float(np.max(np.abs(x_new - x), initial=0.0))  # absolute, as the radii
        new = expanded_surrogate(objective, x_new)
        f_new = new(x_new)
        if not np.isfinite(f_new) or f_new > fx + max(_ACCEPT, _ACCEPT_SDS * noise):
            shrink /= 4.0  # the surrogate was wrong so far out: a smaller box
            if shrink < 1e-3:
                message = f"no improving step after {it} surrogates (f = {fx:.6g})"
                break
            continue
        x, fx, surrogate = x_new, f_new, new
        noise = _noise(surrogate, x)
        stalled = 0 if fx < best_f - FTOL else stalled + 1
        if fx < best_f:
            best_x, best_f, best_sur = x, fx, surrogate
        if step <= XTOL:
            message = f"fixed point after {it} surrogates"
            break
        joined = _joined(x, known)
        if joined is not None:
            message = f"joined start {joined.id}'s fixed point after {it} surrogates"
            best_x, best_f = np.asarray(joined.x, dtype=float), float(joined.fval)
            break
        if stalled >= 2:
            message = f"no decrease by {FTOL} in the last 2 of {it} surrogates"
            break
    else:
        message = f"not settled after {MAX_OUTER} surrogates (last step {step:.3g})"
        exitflag = -1
    x, fx = best_x, best_f
    result = pypesto.OptimizerResult(
        id=start_id,
        x=x,
        fval=fx,
        x0=np.asarray(x0, dtype=float),
        fval0=fval0,
        exitflag=exitflag,
        message=message,
        time=time.perf_counter() - t0,
    )
    result.update(counts)
    return (result, best_sur) if return_surrogate else result


def expanded_surrogate(objective, x, information_ratio=0.0):
    """The surrogate at ``x``, random effects of negligible variance expanded as fixed.

    Held at their draws, such a random effect's mean could not move inside a
    surrogate (the population density is a spike at the draws), so once its
    variance collapsed the iteration kept it where it was and called that a
    fixed point: theophylline's log ke stayed at -2.434 with its variance at the
    bound (log-likelihood -177.840); expanded, it moves to -2.459 (R nlme
    -2.455) and the log-likelihood rises to -177.727. The fit's Hessian comes
    from this surrogate at the estimate too, with ``information_ratio`` set (see
    ``WEAK_INFORMATION_RATIO`` in ``_taylor``): not inside the iteration, where a
    variance expanded cannot move.

    Parameters
    ----------
    objective : ImportanceObjective
    x : ndarray of shape (n_x,)
    information_ratio : float, default=0.0
        Random effects whose variance is below this fraction of the individuals'
        median likelihood variance are expanded too.

    Returns
    -------
    FixedProposalSurrogate

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme.population import ImportanceObjective, PopulationObjective
    >>> model = LinearGaussian(n_params=2, sigma=0.3)
    >>> X, _ = model.simulate(5, random_state=0)
    >>> draws = ExactGaussianPosterior(model).fit().sample(X, 20, random_state=0)
    >>> base = PopulationObjective(draws, np.zeros((5, 20)), ["a", "b"])
    >>> obj = ImportanceObjective(base, model, X, 50, random_state=0)
    >>> expanded_surrogate(obj, obj.pack(cov=np.diag([1.0, 1e-9]))).fe.tolist()
    [1]
    """
    degenerate = negligible_random_effects(objective, x, information_ratio)
    return FixedProposalSurrogate(objective, x, degenerate)


def _noise(surrogate, x):
    """MC SD of the difference of two independent importance estimates like the centre's."""
    with np.errstate(all="ignore"):
        se = float(np.sqrt(np.sum(mc_standard_errors(surrogate.weights(x)) ** 2)))
    return np.sqrt(2.0) * se if np.isfinite(se) else 0.0


def _joined(x, known):
    """The first of ``known`` (settled starts) whose point lies within ``MERGE_TOL`` of ``x``."""
    for other in known:
        if np.max(np.abs(np.asarray(other.x, dtype=float) - x), initial=0.0) <= MERGE_TOL:
            return other
    return None


def run_fixed_proposal(objective, x_names, lb, ub, startpoints, optimizer=None, **_):
    """:func:`minimize_fixed_proposal` from each start point, as a :class:`pypesto.Result`.

    Starts run one after the other (each likelihood pass uses all threads),
    and a start that reaches an earlier one's fixed point joins it (see
    ``MERGE_TOL``); the result is sorted by value, as :func:`run_multistart`'s. Other keyword
    arguments (``n_jobs``, ``verbose``) are accepted and ignored.

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme.population import ImportanceObjective, PopulationObjective
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(10, random_state=0)
    >>> draws = ExactGaussianPosterior(model).fit().sample(X, 50, random_state=0)
    >>> base = PopulationObjective(draws, np.zeros((10, 50)), ["theta0"])
    >>> obj = ImportanceObjective(base, model, X, 100, random_state=0)
    >>> starts = np.array([[0.0, 0.0], [0.5, -1.0]])
    >>> res = run_fixed_proposal(obj, obj.x_names, *obj.bounds, starts)
    >>> len(res.optimize_result), bool(np.isfinite(res.optimize_result[0].fval))
    (2, True)
    """
    startpoints = np.atleast_2d(np.asarray(startpoints, dtype=float))
    width = len(str(len(startpoints)))
    result = pypesto.Result(make_problem(objective, x_names, lb, ub))
    settled = []
    for i, x0 in enumerate(startpoints):
        try:
            start = minimize_fixed_proposal(
                objective, lb, ub, x0, optimizer, f"{i:0{width}d}", known=settled
            )
            if start.exitflag != -1 and not str(start.message).startswith("joined"):
                settled.append(start)
        except Exception as err:  # noqa: BLE001 - a failed start is counted, not fatal
            start = pypesto.OptimizerResult(
                id=f"{i:0{width}d}",
                x0=x0,
                exitflag=-1,
                fval=np.inf,
                message=f"{type(err).__name__}: {err}",
            )
        result.optimize_result.append(start)
    result.optimize_result.sort()
    return result
