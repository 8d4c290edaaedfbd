"""Standard errors and the NONMEM/Monolix-like parameter table.

Standard errors come from the observed information: the Hessian of the
negative log-likelihood at the estimate, by central finite differences of the
analytic gradient. Derived quantities (standard deviations, variances,
correlations) get theirs by the delta method.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.stats import norm

from .._numerics import central_points, central_quotients

__all__ = [
    "derived_quantities",
    "fd_hessian",
    "inverse_hessian",
    "jacobian",
    "population_table",
    "warn_low_ess",
]


def fd_hessian(gradient, x, rel_step=1e-4):
    """Symmetrised central-difference Hessian of ``gradient`` at ``x``.

    Step ``h_j = rel_step * max(1, |x_j|)``: the truncation error is
    ``O(h^2)`` and the rounding error ``O(eps |g| / h)``, both about 1e-8
    relative for ``rel_step = 1e-4``.

    Examples
    --------
    >>> import numpy as np
    >>> A = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> np.allclose(fd_hessian(lambda x: A @ x, np.zeros(2)), A)
    True
    """
    points, h = central_points(x, rel_step)
    H = central_quotients([np.asarray(gradient(p), dtype=float) for p in points], h)
    return 0.5 * (H + H.T)


def inverse_hessian(H, names):
    """Covariance of the estimate, ``H^-1``, for the parameters where H is informative.

    Where H is not positive definite (an estimate at a bound, a variance at zero, a
    non-identifiable parameter), the parameter carrying most of the weakest direction
    is set aside, repeatedly, until the rest of H is positive definite; the set-aside
    parameters get NaN (with a warning naming them) and the others their covariance
    with those held at the estimate, as R nlme reports fixed-effect SEs with a
    variance at zero.

    Examples
    --------
    >>> import numpy as np, warnings
    >>> H = np.array([[4.0, 0.0], [0.0, -1e-3]])  # the second parameter has no curvature
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     cov = inverse_hessian(H, ["a", "b"])
    >>> cov
    array([[0.25,  nan],
           [ nan,  nan]])
    """
    H = np.asarray(H, dtype=float)
    keep = np.ones(len(H), dtype=bool)
    set_aside, smallest = [], None
    while keep.any():
        sub = H[np.ix_(keep, keep)]
        try:
            np.linalg.cholesky(sub)
            break
        except np.linalg.LinAlgError:
            w, V = np.linalg.eigh(sub)
            smallest = w.min() if smallest is None else smallest
            worst = np.flatnonzero(keep)[int(np.argmax(np.abs(V[:, np.argmin(w)])))]
            keep[worst] = False
            set_aside.append(names[worst])
    cov = np.full_like(H, np.nan)
    if keep.any():
        cov[np.ix_(keep, keep)] = np.linalg.inv(H[np.ix_(keep, keep)])
    if set_aside:
        warnings.warn(
            "the Hessian of the negative log-likelihood is not positive definite at the "
            f"estimate (smallest eigenvalue {smallest:.3g}): standard errors of {set_aside} "
            "are NaN (an estimate at a bound, a variance at zero or a non-identifiable "
            "parameter); those of the others hold them at their estimates. Use profile() "
            "for confidence intervals.",
            RuntimeWarning,
            stacklevel=3,
        )
    return cov


def jacobian(fun, x, rel_step=1e-6):
    """Central-difference Jacobian of a vector function, shape (m, n).

    Examples
    --------
    >>> import numpy as np
    >>> np.round(jacobian(lambda x: [x[0] * x[1], x[0]], np.array([2.0, 3.0])), 6)
    array([[3., 2.],
           [1., 0.]])
    """
    x = np.asarray(x, dtype=float).reshape(-1)
    if x.size == 0:
        return np.zeros((len(fun(x)), 0))
    points, h = central_points(x, rel_step)
    return central_quotients([np.asarray(fun(p), dtype=float) for p in points], h)


def random_effect_rows(layout):
    """``(tag, parameter index, group level)`` of every reported random-effect SD.

    A grouped parameter ``p`` has one row per level, tagged ``[column=level]``
    (reported as ``SD(p)[column=level]``); the others one row at level 0, tag "".

    Examples
    --------
    >>> from sknlme.population._parametrization import Parametrization
    >>> par = Parametrization(["a", "b"], variance_groups=("G", ["u", "v"], ["a"]))
    >>> [f"SD({par.param_names[j]}){tag}" for tag, j, _ in random_effect_rows(par)]
    ['SD(a)[G=u]', 'SD(a)[G=v]', 'SD(b)']
    """
    names = layout.param_names
    grouped = set(getattr(layout, "grouped", []))
    rows = []
    for p in layout.random_effects:
        j = names.index(p)
        if j in grouped:
            col = layout.group_column
            rows += [(f"[{col}={lev}]", j, g) for g, lev in enumerate(layout.group_levels)]
        else:
            rows.append(("", j, 0))
    return rows


def derived_quantities(unpacked, layout):
    """Reported quantities of one parameter vector.

    Parameters
    ----------
    unpacked : dict
        ``beta``, ``B`` and ``cov`` as from ``PopulationObjective.unpack``.
    layout : Parametrization
        The objective's layout (parameter and covariate names, covariate
        pairs, random effects, covariance blocks).

    Returns
    -------
    list of (name, kind, value)
        Kinds ``"fixed effect"``, ``"covariate effect"``, ``"SD"``,
        ``"variance"``, ``"correlation"`` (pairs inside a block) and ``"df"``
        (estimated t degrees of freedom); grouped SDs read ``SD(p)[column=level]``.
    """
    beta, B, cov = unpacked["beta"], unpacked["B"], unpacked["cov"]
    names, covs = layout.param_names, layout.covariate_names
    out = [(p, "fixed effect", beta[j]) for j, p in enumerate(names)]
    out += [(f"{covs[c]}:{names[j]}", "covariate effect", B[c, j]) for c, j in layout.cov_pairs]
    sd = np.sqrt(np.diag(cov))
    re = [names.index(p) for p in layout.random_effects]
    if getattr(layout, "general", False):  # group-specific variances, t degrees of freedom
        rows = random_effect_rows(layout)
        var = unpacked["group_var"]
        out += [(f"SD({names[j]}){tag}", "SD", np.sqrt(var[g, j])) for tag, j, g in rows]
        out += [(f"Var({names[j]}){tag}", "variance", var[g, j]) for tag, j, g in rows]
        if layout.estimate_df:
            out.append(("df", "df", unpacked["df"]))
        return out
    out += [(f"SD({names[j]})", "SD", sd[j]) for j in re]
    out += [(f"Var({names[j]})", "variance", cov[j, j]) for j in re]
    for block in layout.blocks:
        for a, j in enumerate(block):
            for m in block[:a]:
                corr = cov[j, m] / (sd[j] * sd[m])
                out.append((f"Corr({names[m]},{names[j]})", "correlation", corr))
    return out


def warn_low_ess(ess, n_draws, fraction):
    """Warn, naming them, about individuals whose ESS is below ``fraction * n_draws``."""
    low = ess[ess < fraction * n_draws]
    if len(low):
        shown = ", ".join(f"{i!r} ({v:.1f})" for i, v in low.head(10).items())
        more = f" and {len(low) - 10} more" if len(low) > 10 else ""
        warnings.warn(
            f"effective sample size below {fraction:.0%} of the {n_draws} draws for "
            f"{len(low)} individual(s): {shown}{more}; their likelihood estimates are "
            "noisy (more n_samples, or check the posterior)",
            RuntimeWarning,
            stacklevel=4,
        )


def population_table(derived_fun, x, cov_x, confidence=0.95):
    """Parameter table with estimates, standard errors, RSE% and Wald intervals.

    Parameters
    ----------
    derived_fun : callable
        ``x -> list of (name, kind, value)`` (see :func:`derived_quantities`).
    x : ndarray
        Free population parameters at the estimate.
    cov_x : ndarray
        Covariance of ``x`` (inverse Hessian).
    confidence : float, default=0.95
        Level of the intervals.

    Returns
    -------
    DataFrame
        Columns ``parameter, kind, estimate, se, rse_percent, ci_lower,
        ci_upper, fixed``; ``rse_percent`` is ``100 se / |estimate|``, but for
        a log-scale fixed effect (a name starting with ``log_``) that of its
        natural-scale value ``exp(estimate)``, ``100 se``, and NaN for
        correlations and covariate effects; a quantity is ``fixed`` when it does not depend on
        any free parameter (it has no standard error). Intervals are Wald
        intervals on the natural scale for effects, on the log scale for SDs
        and variances (so they stay positive) and on Fisher's ``atanh`` scale
        for correlations.
    """
    rows = derived_fun(x)
    values = np.array([v for _, _, v in rows], dtype=float)
    J = jacobian(lambda z: [v for _, _, v in derived_fun(z)], x)
    # parameters without a standard error (NaN rows of cov_x) make NaN only the
    # quantities that depend on them
    unknown = np.isnan(np.diag(cov_x))
    known = np.where(np.isnan(cov_x), 0.0, cov_x)
    se = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", J, known, J), 0.0))
    se[np.any(J[:, unknown] != 0, axis=1)] = np.nan
    z = norm.ppf(0.5 + confidence / 2)
    lo, hi = values - z * se, values + z * se
    for i, (_, kind, v) in enumerate(rows):
        if kind in ("SD", "variance") and v > 0:
            lo[i], hi[i] = v * np.exp(-z * se[i] / v), v * np.exp(z * se[i] / v)
        elif kind == "correlation" and abs(v) < 1:
            zr, sz = np.arctanh(v), se[i] / (1 - v**2)
            lo[i], hi[i] = np.tanh(zr - z * sz), np.tanh(zr + z * sz)
    fixed = ~np.any(J != 0, axis=1)
    se = np.where(fixed, np.nan, se)
    with np.errstate(divide="ignore", invalid="ignore"):
        rse = 100 * se / np.abs(values)
    # a relative error of a log-scale value or a correlation means nothing (log_Cl
    # showed 1.9 % where the CV of CL is 6.1 %, a correlation 684 %): for a log-scale
    # fixed effect ``beta`` the RSE of ``exp(beta)`` is ``100 SE(beta)`` (delta method);
    # correlations and covariate effects get none (parameter_table has both scales)
    for i, (name, kind, _) in enumerate(rows):
        if kind == "fixed effect" and str(name).startswith("log_"):
            rse[i] = 100 * se[i]
        elif kind in ("correlation", "covariate effect"):
            rse[i] = np.nan
    return pd.DataFrame(
        {
            "parameter": [r[0] for r in rows],
            "kind": [r[1] for r in rows],
            "estimate": values,
            "se": se,
            "rse_percent": rse,
            "ci_lower": np.where(fixed, np.nan, lo),
            "ci_upper": np.where(fixed, np.nan, hi),
            "fixed": fixed,
        }
    )
