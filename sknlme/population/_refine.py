"""Refinement of the amortized end points on the exact (importance) likelihood."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import numpy as np

from ._conditional import conditional_mode_proposals
from ._fallback import low_ess_fallback, moment_start
from ._fixed_point import expanded_surrogate, run_fixed_proposal
from ._importance import ImportanceObjective
from ._multistart import distinct_optima, run_multistart, start_failed, successful_starts
from ._rescoring import adaptive_rescorer
from ._sharding import RowShards, close_client, resolve_client
from ._taylor import WEAK_INFORMATION_RATIO

__all__ = ["importance_fit", "refine"]

N_REFINE = 3  # best amortized end points refined
HESSIAN_DRAWS = 2**18  # draws in all for the Hessian (its surrogate: 1 + 2 f + f (f - 1) passes)
_POLISH_SALT = 0x9E3779B1
CONDITIONAL_ROUNDS = 3  # polishes, each after conditional-mode proposals at the last one's end
_MOVED = 0.01  # largest move of the polish (absolute, log scale) that ends the rounds


def refine(objective, model, study, ok, samples, fallback, seed, multistart):
    """Refine ``ok[:3]`` (and a moment start) on the importance ``objective``.

    Rounds of refinement, each after low-ESS individuals got their Laplace
    proposals (a second round only where the refined estimate finds more),
    then a polish on draws enough for an MC SE of 0.1, repeated (up to
    ``CONDITIONAL_ROUNDS`` in all) after conditional-mode proposals at its end
    while it moves the estimate by more than ``_MOVED``.

    Returns
    -------
    objective, result, ok, n_failed, fallback

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme.population import ImportanceObjective, PopulationObjective, run_multistart
    >>> from sknlme.population._fallback import FallbackDraws
    >>> from sknlme.population._multistart import successful_starts
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(10, random_state=0)
    >>> study = model.prepare(X)
    >>> draws = ExactGaussianPosterior(model).fit().sample(X, 50, random_state=0)
    >>> base = PopulationObjective(draws, np.zeros((10, 50)), ["theta0"])
    >>> ok, _ = successful_starts(run_multistart(base, base.x_names, *base.bounds,
    ...                                          np.zeros((1, 2))))
    >>> obj = ImportanceObjective(base, model, study, 50, random_state=0)
    >>> out = refine(obj, model, study, ok, draws, FallbackDraws.empty(1), 0, {})
    >>> out[2][0].x.shape
    (2,)
    """
    lb, ub = objective.bounds
    failed = 0
    # plus a start from the individual posteriors' moments, independent of the
    # amortized fit (which can fail where the network does)
    starts = [r.x for r in distinct_optima(ok[:N_REFINE])]
    starts.append(moment_start(objective, samples, lb, ub))
    at, ess = ok[0].x, None
    for rnd in range(2):  # a second round where the refined estimate finds more low ESS
        objective, more, probed = low_ess_fallback(
            objective, model, study, at, fallback, seed, return_ess=True
        )
        if rnd and more.rows.size == fallback.rows.size:
            ess = probed  # same proposals, same estimate: the conditional step reuses it
            break
        fallback = more
        result = _optimise(objective, lb, ub, starts, multistart)
        ok, failed_refine = successful_starts(result, stacklevel=5)
        failed += failed_refine
        starts, at = [r.x for r in distinct_optima(ok[:N_REFINE])], ok[0].x
    # polish on enough draws that the objective's MC SE is <= 0.1: with 100
    # draws it was 0.2-0.5, so optima moved with the seed along flat directions
    # (sparse theophylline: log ka 0.09 from the exact maximum)
    # (budget 2**16 draws in all: a gradient is 2 n_x + 1 passes over them, and the
    # parameters' MC error falls as 1 / sqrt(N K), so a fixed budget gives a fixed
    # precision at any N; with 2**22, N = 100 took 534 s, with 2**18 54 s, where R
    # nlme takes 2 s; 2**16 still passes the sparse-sampling acceptance tests)
    # then proposals at the conditional modes at the estimate where the ESS is still low
    # (their centres could lie far from those modes, see _conditional)
    objective, moved = conditional_mode_proposals(objective, model, study, at, seed, ess)
    polish = adaptive_rescorer(
        objective, at, seed ^ _POLISH_SALT, total_se=0.1, max_draws=2**16, warn=False
    )
    if polish.K > objective.K or moved.size:
        objective = polish
        result = _optimise(objective, lb, ub, starts[:1], multistart)
        ok, failed_refine = successful_starts(result, stacklevel=5)
        failed += failed_refine
        objective, result, ok = _conditional_rounds(
            objective, model, study, at, ok, result, seed, multistart
        )
    return objective, result, ok, failed, fallback


def _conditional_rounds(objective, model, study, at, ok, result, seed, multistart):
    """Polishes again after conditional-mode proposals at the last polish's end.

    The conditional modes were taken with the parameters without random effect at
    ``at``; their proposals follow those only linearly, so where the polish moved
    them by more than ``_MOVED`` the proposals are taken again there. A polish that
    fails (no fixed point: the likelihood rising along a ridge) keeps the last one's
    end, with a warning; so does one that still moved by more than ``_MOVED`` when
    ``CONDITIONAL_ROUNDS`` polishes are spent.
    """
    lb, ub = objective.bounds
    for _ in range(CONDITIONAL_ROUNDS - 1):
        new = ok[0].x
        if not objective.fe.size or np.max(np.abs(new - at), initial=0.0) <= _MOVED:
            break
        at = new
        trial, moved = conditional_mode_proposals(objective, model, study, at, seed)
        if not moved.size:
            break
        again = _optimise(trial, lb, ub, [at], multistart)
        if all(start_failed(r) for r in again.optimize_result.list):
            warnings.warn(
                "the importance refinement did not settle after new conditional-mode "
                f"proposals ({again.optimize_result.list[0].message}); the estimate is "
                "the previous polish's, and the likelihood may rise further along a "
                "ridge (a parameter the data do not determine, or a variance going "
                "to its bound): check profile() and the standard errors",
                RuntimeWarning,
                stacklevel=6,
            )
            break
        objective, result = trial, again
        ok, _ = successful_starts(result, stacklevel=6)
    else:
        _warn_if_stale(objective, model, study, at, ok[0].x, seed)
    return objective, result, ok


def _warn_if_stale(objective, model, study, at, end, seed):
    """Warn where the last polish allowed ended with stale conditional-mode proposals.

    Stale: the polish moved by more than ``_MOVED`` from ``at``, where its proposals
    were taken, and some individuals would get new ones at its ``end`` (a Laplace
    pass for the individuals of low ESS, on this capped path only).
    """
    move = np.abs(end - at)
    if not objective.fe.size or np.max(move, initial=0.0) <= _MOVED:
        return
    _, rows = conditional_mode_proposals(objective, model, study, end, seed)
    if not rows.size:
        return
    worst = int(np.argmax(move))
    ids = ", ".join(repr(objective._ids[i]) for i in rows[:5])
    warnings.warn(
        f"the importance refinement was still moving after {CONDITIONAL_ROUNDS} "
        f"polish{'es' * (CONDITIONAL_ROUNDS != 1)} with new conditional-mode proposals "
        f"({objective.x_names[worst]} by "
        f"{move[worst]:.3g} in the last), and the proposals of {rows.size} individuals "
        f"({ids}{', ...' if rows.size > 5 else ''}) are no longer at their conditional "
        "modes: the estimate may not be the maximum (a likelihood rising along a ridge, "
        "a parameter the data do not determine): check profile() and the standard errors",
        RuntimeWarning,
        stacklevel=6,
    )


def _optimise(objective, lb, ub, starts, multistart):
    """Re-centred fixed-proposal surrogates where there are random effects, else L-BFGS-B.

    (N = 100 simulated oral subjects: the refinement on central differences took
    44 s of a 84 s fit, 2,840 objective calls of 15 likelihood passes each.)
    """
    run = run_fixed_proposal if objective.re.size else run_multistart
    return run(objective, objective.x_names, lb, ub, np.array(starts), **multistart)


def importance_fit(
    base,
    model,
    study,
    ok,
    samples,
    fallback,
    seeds,
    n_samples,
    multistart,
    scheduler=None,
    n_rescore=5,
):
    """The importance likelihood's part of a fit: refinement, re-scoring, Hessian objective.

    The per-individual passes run where ``scheduler`` says (see
    :func:`~sknlme.population._sharding.resolve_client`); the client is
    detached from every objective before returning.

    Returns
    -------
    SimpleNamespace
        ``objective``, ``result``, ``ok``, ``failed``, ``fallback``,
        ``rescorer`` (fresh draws, grown until the log-likelihood's MC SE is
        small), ``candidates`` (distinct best end points) and their re-scored
        ``values``, ``hessian_objective`` (fixed-proposal surrogate at the best).
    """
    seed_importance, seed_rescore = seeds
    client, owned = resolve_client(scheduler)
    shards = RowShards(client)
    try:
        objective = ImportanceObjective(base, model, study, n_samples, random_state=seed_importance)
        objective.shards = shards
        objective, result, ok, failed, fallback = refine(
            objective, model, study, ok, samples, fallback, seed_importance, multistart
        )
        # the Hessian on the whole budget: the curvature along a parameter without random
        # effect carries a weighted variance of the draws' likelihood slopes, noisy on few
        # draws (theophylline, log ke: 330 on 1,000 draws per subject against 517-660 on
        # other seeds and 569 on 21,845, so an SE of 0.104 where 0.055 is right); the
        # re-scoring grows from n_samples fresh draws
        n_hess = max(n_samples, HESSIAN_DRAWS // objective.n)
        hessian_objective = objective.with_draws(n_hess, random_state=seed_rescore)
        rescorer = adaptive_rescorer(
            objective.with_draws(n_samples, random_state=seed_rescore), ok[0].x, seed_rescore
        )
        candidates = distinct_optima(ok[:n_rescore])
        values = [rescorer(r.x) for r in candidates]
        chosen = candidates[int(np.nanargmin(values))]
        rescorer.weights(chosen.x)  # kept in its cache for the result
        if objective.re.size:
            # the Hessian from the analytic gradient of proposals fixed at the estimate:
            # by central differences of the exact objective it took 25 of 71 s at N = 100
            # with random effects of negligible variance expanded as fixed parameters: held
            # at their draws, the mean of one could not move, and theophylline's log ke
            # (variance e^-20) got an SE of 0.0002 where R nlme reports 0.06
            hessian_objective = expanded_surrogate(
                hessian_objective, chosen.x, WEAK_INFORMATION_RATIO
            )
    finally:
        shards.client = None  # later passes (predictions, profiles) run in this process
        close_client(client, owned)
    return SimpleNamespace(
        objective=objective,
        result=result,
        ok=ok,
        failed=failed,
        fallback=fallback,
        rescorer=rescorer,
        candidates=candidates,
        values=values,
        hessian_objective=hessian_objective,
    )
