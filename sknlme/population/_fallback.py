"""Exact per-individual fallbacks where the network's posterior cannot be trusted.

An individual outside the network's training designs (its envelope), or
whose network draws are not finite, or whose importance weights collapse on
a few of the network-based proposal's draws, gets its draws and its
importance proposal from the Laplace approximation of its own posterior
(:func:`laplace_approximations`) on the model's exact likelihood and the
training prior. The importance likelihood is then right whatever the
network's quality there; the fit names these individuals (``fallback_``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..posterior import laplace_approximations
from ..simulate import keyed_standard_normal
from ._ess_probe import LOW_ESS_FRACTION, probe_ess
from ._objective import amortized_offsets

__all__ = [
    "FallbackDraws",
    "gaussian_draws",
    "low_ess_fallback",
    "moment_start",
    "sample_with_fallback",
]

_OUTSIDE_WARNING = r"(?s).*lie outside the network's training designs"
_DRAW_SALT = 0x5EED_FA11  # keeps the Laplace draws apart from the network's stream
# The Laplace approximation is of the posterior under the training prior with its
# covariance times this (SDs x 10). Measured on theophylline with doses in ug/kg
# (log Cl 14 prior SDs out): under the training prior itself the mode sat between
# prior and likelihood, the Gaussian standing for the likelihood was a tangent far
# from the likelihood's mode, and the fit ended 50 log-likelihood units below the
# maximum; its draws also set bounds that excluded the maximum.
# Error parameters keep the training prior: an individual with as many observations
# as parameters fits its data exactly as sigma -> 0, an unbounded likelihood that only
# the prior holds (sparse theophylline, 4 samples: log sigma -13 under a prior x100).
PRIOR_INFLATION = 100.0


def prior_inflation(model):
    """``PRIOR_INFLATION`` on the structural parameters, 1 on the error parameters."""
    error = set(getattr(model, "error_params", ()))
    return np.array([1.0 if p in error else PRIOR_INFLATION for p in model.param_names])


def gaussian_draws(seed, keys, K, mean, cov):
    """Draws (m, K, d) of ``N(mean_i, cov_i)``, row ``i`` keyed by ``(seed, keys[i])``.

    Examples
    --------
    >>> import numpy as np
    >>> keys = np.array([3, 4], dtype=np.uint64)
    >>> z = gaussian_draws(0, keys, 20_000, np.array([[1.0], [2.0]]), np.ones((2, 1, 1)) * 4)
    >>> z.shape, np.round(z.mean(axis=1).ravel(), 1).tolist()
    ((2, 20000, 1), [1.0, 2.0])
    >>> np.round(z.std(axis=1).ravel(), 1).tolist()
    [2.0, 2.0]
    """
    mean = np.asarray(mean, dtype=float)
    m, d = mean.shape
    z = keyed_standard_normal(int(seed) ^ _DRAW_SALT, np.asarray(keys, np.uint64), K * d)
    chol = np.linalg.cholesky(np.asarray(cov, dtype=float))
    return mean[:, None, :] + z.reshape(m, K, d) @ np.swapaxes(chol, -1, -2)


class FallbackDraws:
    """Which individuals fell back to their Laplace approximation, and why.

    Attributes
    ----------
    rows : ndarray of int
        Row positions of the individuals (in the study's order).
    table : DataFrame
        Indexed by ID: ``reason`` and ``converged`` (whether the mode search
        converged; where not, a warning names the individual).
    mode, cov : ndarray
        The Laplace approximations ``N(mode, cov)`` of the rows' posteriors
        under the training prior with its covariance times ``prior_inflation(model)``.

    Examples
    --------
    >>> fb = FallbackDraws.empty(3)
    >>> fb.rows.size, list(fb.table.columns)
    (0, ['reason', 'converged'])
    """

    def __init__(self, rows, ids, reasons, mode, cov, ok):
        self.rows = np.asarray(rows, dtype=np.intp)
        self.mode, self.cov = mode, cov
        index = pd.Index(list(ids), name="ID")
        self.table = pd.DataFrame({"reason": list(reasons), "converged": ok}, index=index)
        self.table["converged"] = self.table["converged"].astype(bool)

    @classmethod
    def empty(cls, d):
        """No individual fell back (``d`` parameters)."""
        return cls([], [], [], np.empty((0, d)), np.empty((0, d, d)), np.empty(0, bool))

    def merge(self, other):
        """Both sets of individuals (rows of ``other`` not already here are added).

        Examples
        --------
        >>> FallbackDraws.empty(2).merge(FallbackDraws.empty(2)).rows.size
        0
        """
        new = ~np.isin(other.rows, self.rows)
        return FallbackDraws(
            np.concatenate([self.rows, other.rows[new]]),
            [*self.table.index, *other.table.index[new]],
            [*self.table["reason"], *other.table["reason"][new]],
            np.concatenate([self.mode, other.mode[new]]),
            np.concatenate([self.cov, other.cov[new]]),
            np.concatenate([self.table["converged"], other.table["converged"][new]]),
        )

    def replace_draws(self, samples, keys, seed):
        """``samples`` (n, K, d) with the rows' draws from their Laplace approximations.

        Examples
        --------
        >>> import numpy as np
        >>> FallbackDraws.empty(1).replace_draws(np.zeros((2, 3, 1)), np.arange(2), 0).shape
        (2, 3, 1)
        """
        if self.rows.size == 0:
            return samples
        out = np.array(samples, dtype=float, copy=True)
        out[self.rows] = gaussian_draws(
            seed, np.asarray(keys)[self.rows], out.shape[1], self.mode, self.cov
        )
        return out


def laplace_fallback(model, study, rows, reasons, starts=None, random_state=0):
    """Laplace approximations of ``rows``; a warning names those that did not converge.

    Examples
    --------
    >>> from sknlme.models import LinearGaussian
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(3, random_state=0)
    >>> fb = laplace_fallback(model, model.prepare(X), [1], ["test"])
    >>> fb.table.index.tolist(), bool(fb.table["converged"].all())
    ([2], True)
    """
    rows = np.asarray(rows, dtype=np.intp)
    sub = study.take(rows)
    mode, cov, ok = laplace_approximations(
        model, sub, starts, random_state=random_state, prior_inflation=prior_inflation(model)
    )
    ids = [study.ids[i] for i in rows]
    if not ok.all():
        bad = [repr(ids[j]) for j in np.flatnonzero(~ok)[:5]]
        warnings.warn(
            f"the posterior mode search did not converge for individual(s) {', '.join(bad)}"
            f"{' and more' if (~ok).sum() > 5 else ''}: their importance proposals may be "
            "poor (see fallback_ and ess_)",
            RuntimeWarning,
            stacklevel=4,
        )
    return FallbackDraws(rows, ids, reasons, mode, cov, ok)


def _outside_reasons(posterior, study):
    """The envelope's reason per individual ("" inside), or None without an envelope."""
    check = getattr(posterior, "check_envelope", None)
    if check is None or getattr(posterior, "envelope_", None) is None:
        return None
    return check(study)["reason"].to_numpy()


def sample_with_fallback(posterior, model, study, n_samples, seed, on_outside, fallback=None):
    """Posterior draws, their amortized offsets and the fallback individuals.

    Parameters
    ----------
    posterior, model, study, n_samples, seed
        As for the estimator's draws.
    on_outside : {"fallback", "warn", "raise"}
        What individuals outside the training designs (or with non-finite
        draws) get: Laplace draws (needs ``model.has_likelihood``), the
        posterior's warning, or an error naming them.
    fallback : FallbackDraws, default=None
        Fallbacks found before (for fresh draws of the same individuals):
        their rows get fresh Laplace draws, no new search is run.

    Returns
    -------
    samples : ndarray of shape (n, K, d)
    offsets : ndarray of shape (n, K)
    fallback : FallbackDraws

    Examples
    --------
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> model = LinearGaussian(n_params=1)
    >>> X, _ = model.simulate(3, random_state=0)
    >>> post = ExactGaussianPosterior(model).fit()
    >>> s, o, fb = sample_with_fallback(post, model, model.prepare(X), 5, 0, "fallback")
    >>> s.shape, fb.rows.size
    ((3, 5, 1), 0)
    """
    d = len(model.param_names)
    reasons = _outside_reasons(posterior, study)
    with warnings.catch_warnings():
        if on_outside != "warn" and reasons is not None:
            warnings.filterwarnings("ignore", message=_OUTSIDE_WARNING)  # said below instead
        samples = np.asarray(posterior.sample(study, n_samples, random_state=seed))
    if samples.shape != (len(study), n_samples, d):
        raise ValueError(
            f"posterior.sample returned shape {samples.shape}, expected "
            f"({len(study)}, {n_samples}, {d}) for the parameters {list(model.param_names)} "
            "of posterior.model: is the posterior trained for another model?"
        )
    nonfinite = ~np.all(np.isfinite(samples), axis=(1, 2))
    why = np.array([""] * len(study), dtype=object) if reasons is None else reasons.astype(object)
    why[nonfinite] = [(w + "; " if w else "") + "non-finite network draws" for w in why[nonfinite]]
    prior = getattr(model, "prior", None)  # None (duck-typed model): prior_mean, prior_cov
    if prior is not None and prior.kind != "normal":  # a flow's draws can leave a box
        inside = np.isfinite(prior.log_density(samples))
        none_in = ~inside.any(axis=1) & ~nonfinite
        why[none_in] = [
            (w + "; " if w else "") + "no draw in the prior's support" for w in why[none_in]
        ]
        if not inside.all():
            warnings.warn(
                f"{1 - inside.mean():.2%} of the network's draws lie outside the support of the "
                f"{prior.kind} training prior and get zero weight",
                RuntimeWarning,
                stacklevel=3,
            )
    flagged = np.flatnonzero(why != "")
    if fallback is not None:
        nonfinite[fallback.rows] = False
        samples = fallback.replace_draws(samples, study.keys, seed)
        flagged = flagged[:0]
    else:
        fallback = FallbackDraws.empty(d)
    if flagged.size and on_outside == "raise":
        lines = [f"ID {study.ids[i]}: {why[i]}" for i in flagged[:5]]
        raise ValueError(
            f"{flagged.size} of {len(study)} individuals lie outside the network's training "
            "designs or have non-finite draws (on_outside='raise'):\n" + "\n".join(lines)
        )
    if flagged.size and on_outside == "fallback":
        finite = np.where(np.isfinite(samples[flagged]), samples[flagged], np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: no start
            starts = np.nanmean(finite, axis=1)[:, None, :]
        fallback = laplace_fallback(model, study, flagged, why[flagged], starts, seed)
        samples = fallback.replace_draws(samples, study.keys, seed)
    elif nonfinite.any():
        i = np.flatnonzero(nonfinite)[0]
        raise ValueError(f"posterior draws of individual {study.ids[i]!r} are not finite")
    offsets = amortized_offsets(samples, model.prior_mean, model.prior_cov, prior=prior)
    if fallback.rows.size:  # their draws are of the posterior under the wider prior
        cov = np.asarray(model.prior_cov, dtype=float)
        offsets[fallback.rows] = amortized_offsets(
            samples[fallback.rows], model.prior_mean, _inflated(cov, prior_inflation(model))
        )
    lost = np.flatnonzero(~np.any(np.isfinite(offsets), axis=1))
    if lost.size:
        raise ValueError(
            f"no posterior draw of individual {study.ids[lost[0]]!r} lies in the support of the "
            "training prior (on_outside='fallback' gives such individuals Laplace draws)"
        )
    return samples, offsets, fallback


def _inflated(cov, f):
    cov = np.diag(cov) if cov.ndim == 1 else cov
    return cov * np.sqrt(np.outer(f, f))


def low_ess_fallback(objective, model, study, x, fallback, seed, return_ess=False):
    """Laplace proposals for individuals whose ESS at ``x`` is low, where they do better.

    Individuals not yet in ``fallback`` whose effective sample size under the
    importance objective at ``x`` is below ``LOW_ESS_FRACTION`` of the draws
    (judged on four times the objective's draws, at least 400) get their
    Laplace approximation as proposal, kept where it raises the ESS.

    Returns
    -------
    objective : ImportanceObjective
        With the Laplace proposals of every fallback individual.
    fallback : FallbackDraws
        ``fallback`` and the individuals added here.
    ess : ndarray of shape (n,)
        Only with ``return_ess``: the ESS fractions of the returned
        ``objective`` at ``x`` on the probe's draws, as ``probe_ess(objective,
        x, seed)`` gives them (the probe of the kept rows replaces theirs), so
        that a next step at the same ``x`` need not probe again (at N = 10,000
        a probe of all individuals took 3.3 s of a 44.5 s fit).

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme.population import ImportanceObjective, PopulationObjective
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(4, random_state=0)
    >>> study = model.prepare(X)
    >>> bad = ExactGaussianPosterior(model, cov_scale=1e-4).fit()  # far too narrow
    >>> draws = bad.sample(X, 20, random_state=0)
    >>> base = PopulationObjective(draws, np.zeros((4, 20)), ["theta0"])
    >>> obj = ImportanceObjective(base, model, study, 100, random_state=0)
    >>> x = obj.pack(beta=[0.0], cov=[[1.0]])
    >>> new, fb = low_ess_fallback(obj, model, study, x, FallbackDraws.empty(1), 0)
    >>> fb.rows.size > 0, bool(np.all(probe_ess(new, x, 0) >= probe_ess(obj, x, 0)))
    (True, True)
    """
    if fallback.rows.size:
        objective = objective.with_gaussians(
            fallback.rows, fallback.mode, fallback.cov, prior_inflation(model)
        )
    ess = probe_ess(objective, x, seed)
    low = np.flatnonzero(ess < LOW_ESS_FRACTION)
    low = low[~np.isin(low, fallback.rows)]
    if low.size == 0:
        return (objective, fallback, ess) if return_ess else (objective, fallback)
    reasons = [
        f"effective sample size {ess[i]:.1%} of the draws with the network's proposal" for i in low
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # judged by the ESS below instead
        extra = laplace_fallback(model, study, low, reasons, random_state=seed)
    trial = objective.with_gaussians(extra.rows, extra.mode, extra.cov, prior_inflation(model))
    trial_ess = probe_ess(trial, x, seed, rows=low)  # the low rows alone
    better = trial_ess > ess[low]
    keep = FallbackDraws(
        low[better],
        extra.table.index[better],
        extra.table["reason"][better],
        extra.mode[better],
        extra.cov[better],
        extra.table["converged"].to_numpy()[better],
    )
    objective = objective.with_gaussians(keep.rows, keep.mode, keep.cov, prior_inflation(model))
    if not return_ess:
        return objective, fallback.merge(keep)
    ess = ess.copy()
    ess[keep.rows] = trial_ess[better]
    return objective, fallback.merge(keep), ess


def moment_start(objective, samples, lb, ub):
    """A start from the moments of the individual posteriors (draw means and variances).

    ``beta`` is the mean of the individuals' posterior means; each random
    effect's variance the variance of those means plus the mean posterior
    variance (the law of total variance), clipped into the bounds. It does not
    depend on the amortized fit, so a refinement starts well even where that
    fit failed.

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.population import PopulationObjective
    >>> phi = np.random.default_rng(0).normal(2.0, 1.0, size=(50, 40, 1))
    >>> obj = PopulationObjective(phi, np.zeros((50, 40)), ["a"])
    >>> x = moment_start(obj, phi, *obj.bounds)
    >>> np.round(x, 1).tolist()
    [2.0, 0.0]
    """
    means = samples.mean(axis=1)
    var = means.var(axis=0) + samples.var(axis=1).mean(axis=0)
    layout = objective.layout
    cov = np.diag(np.where(np.isin(np.arange(var.size), _re_index(layout)), var, 1.0))
    x = objective.pack(beta=means.mean(axis=0), cov=cov)
    return np.clip(x, lb, ub)


def _re_index(layout):
    names = list(layout.param_names)
    return [names.index(p) for p in layout.random_effects]
