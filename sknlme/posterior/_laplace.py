"""Per-individual posterior modes and Laplace approximations on the exact likelihood.

Where the network's posterior cannot be trusted (an individual outside its
training designs, or importance weights that collapse on a few draws), the
importance likelihood needs another proposal. Each such individual gets the
Laplace approximation ``N(mode, H^-1)`` of its posterior under the training
prior, ``log p(y_i | phi) + log p0(phi)``, found by a damped Newton ascent that
runs for all of them at once: every iteration evaluates the model's
likelihood at the ``1 + 2d + 2d(d - 1)`` finite-difference points of the
gradient and Hessian of every individual in one call (the models' likelihoods
are vectorised over individuals and draws, and a call costs mostly its
overhead at these sizes). Steps use the absolute eigenvalues of the Hessian
(a saddle or a concave-up region is crossed, not climbed into), are capped at
two prior standard deviations per coordinate, and are halved until the log
posterior increases.
"""

from __future__ import annotations

import numpy as np

from .._numerics import LOG_2PI
from ..simulate import keyed_standard_normal

__all__ = ["laplace_approximations"]

_N_RANDOM_STARTS = 32  # prior draws tried as starts besides the given ones
_MAX_ITER = 60
_MAX_HALVINGS = 30


def _prior(model):
    mean = np.asarray(model.prior_mean, dtype=float)
    cov = np.asarray(model.prior_cov, dtype=float)
    cov = np.diag(cov) if cov.ndim == 1 else cov
    return mean, cov


def _log_posterior(model, padded, covariates, phi, mean, prec, log_norm):
    """``log p(y|phi) + log p0(phi)`` at ``phi`` (m, P, d); -inf where not finite."""
    with np.errstate(all="ignore"):
        ll = model.log_likelihood_padded(phi, padded, covariates)
        z = phi - mean
        lp = ll - 0.5 * np.einsum("mpi,ij,mpj->mp", z, prec, z) - log_norm
    return np.where(np.isfinite(lp), lp, -np.inf)


def _stencil(d, h):
    """Offsets (P, d) of the centre, ``+-h_i`` and ``(+-h_i, +-h_j)`` points."""
    rows = [np.zeros(d)]
    for i in range(d):
        for s in (1.0, -1.0):
            e = np.zeros(d)
            e[i] = s * h[i]
            rows.append(e)
    for i in range(d):
        for j in range(i + 1, d):
            for si, sj in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                e = np.zeros(d)
                e[i], e[j] = si * h[i], sj * h[j]
                rows.append(e)
    return np.array(rows)


def _derivatives(f, d, h):
    """Gradient (m, d) and Hessian (m, d, d) from stencil values ``f`` (m, P)."""
    m = f.shape[0]
    f0 = f[:, 0]
    plus, minus = f[:, 1 : 2 * d + 1 : 2], f[:, 2 : 2 * d + 1 : 2]
    grad = (plus - minus) / (2 * h)
    H = np.zeros((m, d, d))
    H[:, np.arange(d), np.arange(d)] = (plus - 2 * f0[:, None] + minus) / h**2
    k = 2 * d + 1
    for i in range(d):
        for j in range(i + 1, d):
            pp, pm, mp, mm = f[:, k], f[:, k + 1], f[:, k + 2], f[:, k + 3]
            H[:, i, j] = H[:, j, i] = (pp - pm - mp + mm) / (4 * h[i] * h[j])
            k += 4
    return grad, H


def _preferred_images(model, mode, cov, precision):
    """Each mode replaced by the image under the model's likelihood symmetries that the
    training prior prefers (the likelihood is the same at all of them).

    The preference is for the relative values within the permuted parameters
    (``log ka - log ke``), not their absolute ones: a change of time unit
    shifts every log rate constant by the same amount, and the training
    prior's absolute preference then picks the wrong image (measured on
    theophylline in minutes: the flip-flop image, 2.9 off in log ke and log ka).
    """
    symmetries = [np.asarray(p, dtype=np.intp) for p in model.likelihood_symmetries]
    if not symmetries:
        return mode, cov, precision
    mean, prior_cov = _prior(model)
    var = np.diag(prior_cov)
    mode, cov, precision = mode.copy(), cov.copy(), precision.copy()

    def score(x, group):
        rel = x[:, group] - x[:, group].mean(axis=1, keepdims=True)
        ref = mean[group] - mean[group].mean()
        return -np.sum((rel - ref) ** 2 / var[group], axis=1)

    for perm in symmetries:
        group = np.flatnonzero(perm != np.arange(perm.size))
        image = mode[:, perm]
        better = score(image, group) > score(mode, group)
        mode[better] = image[better]
        cov[better] = cov[better][:, perm][:, :, perm]
        precision[better] = precision[better][:, perm][:, :, perm]
    return mode, cov, precision


def laplace_approximations(
    model,
    study,
    starts=None,
    rel_step=1e-3,
    random_state=0,
    prior_inflation=1.0,
    prior=None,
    return_precision=False,
):
    """Posterior modes and Laplace covariances of individuals under the training prior.

    Parameters
    ----------
    model : Model
        With an observation likelihood (``model.has_likelihood``).
    study : Study
        The individuals (prepared by ``model.prepare``).
    starts : array-like of shape (n, s, d), default=None
        Candidate starting points per individual (e.g. the mean of its network
        draws); non-finite ones are skipped. The prior mean and 32 prior draws
        are always tried too, and the best candidate starts the ascent.
    rel_step : float, default=1e-3
        Finite-difference step, relative to each parameter's training prior SD.
    random_state : int, default=0
        Seeds the prior draws tried as starts (keyed by individual ID).
    prior_inflation : float or array-like of shape (d,), default=1.0
        Factor on the training prior's covariance (per parameter: the
        covariance is scaled by ``sqrt(f_i f_j)``): the posterior under this
        wider prior is approximated (its mode lies near the likelihood's, so
        the Gaussian that stands for the likelihood is a good one even where
        the data lie far out in the training prior's tails).
    prior : tuple (mean, cov), default=None
        Another Gaussian prior instead of the training prior: ``mean`` of shape
        (d,) or (n, d) (one per individual), ``cov`` of shape (d, d), e.g. the
        population distribution at an estimate (its conditional modes);
        ``prior_inflation`` is then ignored. The 32 random starts are its draws;
        finite-difference steps still scale with the training prior's SDs.
    return_precision : bool, default=False
        Also return the negative Hessian of the log posterior at the mode, not
        floored: with a prior that holds some parameters tight, its blocks between
        those and the others are the likelihood's, which its inverse ``cov`` no
        longer resolves.

    Returns
    -------
    mode : ndarray of shape (n, d)
    cov : ndarray of shape (n, d, d)
        Inverse negative Hessian of the log posterior at the mode (eigenvalues
        floored at a millionth of the prior precision's smallest).
    ok : ndarray of shape (n,), bool
        Whether the ascent reached a finite mode with a negative definite
        Hessian and a gradient small against the curvature.
    precision : ndarray of shape (n, d, d)
        With ``return_precision``.

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import laplace_approximations
    >>> model = LinearGaussian(n_params=2, sigma=0.3)
    >>> X, _ = model.simulate(3, random_state=0)
    >>> study = model.prepare(X)
    >>> mode, cov, ok = laplace_approximations(model, study)
    >>> bool(ok.all()), mode.shape, cov.shape
    (True, (3, 2), (3, 2, 2))
    """
    if not model.has_likelihood:
        raise ValueError(f"{model!r} has no observation likelihood")
    only_starts = False
    f = np.broadcast_to(np.asarray(prior_inflation, dtype=float), (len(model.param_names),))
    if prior is None and np.any(f != 1.0):
        # continuation: the mode under the training prior first, then the ascent under
        # the wider prior from there (a model with symmetric modes, ka <-> ke in SSfol,
        # keeps the training prior's side, where a wide prior would pick either; measured
        # on theophylline in ug/kg: the flip-flop mode for 12 of 12 without this)
        first = laplace_approximations(model, study, starts, rel_step, random_state)[0]
        starts, only_starts = first[:, None, :], True
    mean, prior_cov = _prior(model)
    start_sd = np.sqrt(np.diag(prior_cov))
    prior_cov = prior_cov * np.sqrt(np.outer(f, f))
    d, n = mean.size, len(study)
    if prior is not None:
        mean = np.asarray(prior[0], dtype=float)
        prior_cov = np.asarray(prior[1], dtype=float)
    mean = np.broadcast_to(mean, (n, d))
    prec = np.linalg.inv(prior_cov)
    log_norm = 0.5 * (d * LOG_2PI + np.linalg.slogdet(prior_cov)[1])
    sd = np.sqrt(np.diag(prior_cov))
    padded, covs = study.padded, study.covariates

    def logpost(phi, rows):
        sub = padded.take(rows) if len(rows) != n else padded
        cv = covs.iloc[rows] if covs is not None and len(rows) != n else covs
        return _log_posterior(model, sub, cv, phi, mean[rows, None, :], prec, log_norm)

    # keyed by individual: an individual's starts (and so its mode) do not depend on the
    # others; from the training prior itself, however wide the prior of the search, so
    # that a model with symmetric modes (ka <-> ke in SSfol) starts on the prior's side
    z = keyed_standard_normal(int(random_state), study.keys, _N_RANDOM_STARTS * d)
    spread = start_sd if prior is None else sd  # a given prior: its own draws
    cands = [mean[:, None, :], mean[:, None, :] + z.reshape(n, -1, d) * spread]
    if starts is not None:
        given = np.asarray(starts, dtype=float).reshape(n, -1, d)
        cands = [given] if only_starts else [given, *cands]
    cands = np.concatenate(cands, axis=1)
    cands = np.where(np.isfinite(cands), cands, mean[:, None, :])
    all_rows = np.arange(n)
    f = logpost(cands, all_rows)
    x = cands[all_rows, np.argmax(f, axis=1)]
    fx = f.max(axis=1)

    h = rel_step * start_sd
    offsets = _stencil(d, h)
    floor = 1e-6 * np.linalg.eigvalsh(prec).min()
    cap = 2.0 * sd
    active = np.isfinite(fx)
    grad = np.zeros((n, d))
    H = np.zeros((n, d, d))
    for _ in range(_MAX_ITER):
        rows = np.flatnonzero(active)
        if rows.size == 0:
            break
        fs = logpost(x[rows, None, :] + offsets, rows)
        g, Hr = _derivatives(fs, d, h)
        grad[rows], H[rows] = g, Hr
        w, V = np.linalg.eigh(-Hr)
        step = np.einsum("mij,mj,mkj,mk->mi", V, 1.0 / np.maximum(np.abs(w), floor), V, g)
        step *= np.min(np.minimum(1.0, cap / np.maximum(np.abs(step), 1e-300)), axis=1)[:, None]
        done = np.einsum("mi,mi->m", g, step) < 1e-8
        t = np.ones(rows.size)
        todo = ~done
        for _ in range(_MAX_HALVINGS):
            if not todo.any():
                break
            r = rows[todo]
            trial = x[r] + t[todo, None] * step[todo]
            ft = logpost(trial[:, None, :], r)[:, 0]
            up = ft > fx[r]
            x[r[up]], fx[r[up]] = trial[up], ft[up]
            idx = np.flatnonzero(todo)
            todo[idx[up]] = False
            t[idx[~up]] *= 0.5
        done |= todo  # no increase along the step: at the mode within the FD precision
        active[rows[done]] = False
    w, V = np.linalg.eigh(-H)
    cov = np.einsum("nij,nj,nkj->nik", V, 1.0 / np.maximum(w, floor), V)
    newton = np.einsum("ni,nij,nj->n", grad, cov, grad)  # squared Newton decrement
    x, cov, precision = _preferred_images(model, x, cov, -H)
    ok = np.isfinite(fx) & np.all(w > floor, axis=1) & ~active & (newton < 1e-2)
    return (x, cov, ok, precision) if return_precision else (x, cov, ok)
