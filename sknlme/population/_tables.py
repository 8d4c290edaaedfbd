"""The parameter table a pharmacometrician files: both scales, CV %, correlations, OFV.

:func:`parameter_table` extends the estimation-scale table of
:meth:`PopulationFitResult.summary` (its delta-method SEs and Wald intervals)
with the natural scale. A parameter is on the log scale when its name starts
with ``log_`` (the convention of every built-in model: ``log_Cl``,
``log_sigma``; see :func:`is_log_scale`), and then:

- its fixed effect ``beta`` becomes ``exp(beta)`` (the typical value, e.g. CL),
  with SE ``exp(beta) SE(beta)`` (delta method), RSE ``100 SE(beta)`` and the
  interval ``exp`` of the log-scale bounds;
- a covariate effect ``c`` on it becomes the factor ``exp(c)`` per unit of the
  covariate;
- its random-effect SD ``omega`` becomes the CV of the log-normal parameter,
  ``100 sqrt(exp(omega^2) - 1)``, with the delta-method SE and the interval
  transformed from that of ``omega``.

RSE % is given only where the estimate is a natural-scale quantity: never
for a log-scale value (``log_Cl = -3.2`` has no meaningful relative error),
and never for a correlation.

Profile intervals (``profile_lower``, ``profile_upper`` and their natural
scale), when profiles are passed: a likelihood-ratio interval is invariant
under monotone reparametrisation, so the profile of ``log_var(p)`` gives the
interval of ``SD(p) = exp(log_var / 2)``, of ``Var(p)`` and of the CV % at
once, and that of ``log_Cl`` gives the interval of ``Cl``. Rows without a
free parameter of their own (correlations, the SDs inside a correlated
block, parameters not profiled) get NaN.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ._summary import random_effect_rows

__all__ = [
    "condition_number",
    "estimate_correlation",
    "is_log_scale",
    "lognormal_cv",
    "parameter_table",
]


def is_log_scale(name):
    """Whether parameter ``name`` is on the log scale (it starts with ``log_``).

    Examples
    --------
    >>> from sknlme.population import is_log_scale
    >>> is_log_scale("log_Cl"), is_log_scale("theta0")
    (True, False)
    """
    return str(name).startswith("log_")


def lognormal_cv(omega):
    """CV % of a log-normal parameter whose log has SD ``omega``, and its derivative.

    ``cv = 100 sqrt(exp(omega^2) - 1)`` (about ``100 omega`` for small omega).

    Returns
    -------
    cv, dcv_domega : ndarray

    Examples
    --------
    >>> from sknlme.population import lognormal_cv
    >>> cv, d = lognormal_cv(0.3)
    >>> round(float(cv), 2), round(float(d), 1)
    (30.69, 107.0)
    """
    omega = np.asarray(omega, dtype=float)
    with np.errstate(over="ignore"):  # an unbounded upper interval end: inf, said as such
        e = np.exp(omega**2)
    cv = 100 * np.sqrt(e - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(omega > 0, 100 * omega * e / np.sqrt(e - 1), 100.0)
    return cv, d


def estimate_correlation(cov_x, names):
    """Correlation matrix of the estimates from their covariance (NaN where unknown).

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.population import estimate_correlation
    >>> estimate_correlation(np.array([[4.0, 1.0], [1.0, 1.0]]), ["a", "b"]).loc["a", "b"]
    np.float64(0.5)
    """
    cov = np.asarray(cov_x, dtype=float)
    sd = np.sqrt(np.diag(cov))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = cov / np.outer(sd, sd)
    return pd.DataFrame(corr, index=list(names), columns=list(names))


def condition_number(corr):
    """Largest over smallest eigenvalue of a correlation matrix of the estimates.

    As NONMEM prints it (``$COV PRINT=E``); above about 1000 the estimates are
    usually taken as ill-conditioned. Parameters with NaN correlations
    (no standard error) are left out, with a warning naming them; NaN when
    fewer than one remains.

    Examples
    --------
    >>> import numpy as np
    >>> from sknlme.population import condition_number
    >>> float(condition_number(np.array([[1.0, 0.5], [0.5, 1.0]])))
    3.0
    """
    frame = corr if isinstance(corr, pd.DataFrame) else pd.DataFrame(np.asarray(corr))
    ok = np.isfinite(np.diag(frame.to_numpy(dtype=float)))
    if not ok.all():
        warnings.warn(
            f"condition number without {list(frame.index[~ok])}: they have no standard error",
            RuntimeWarning,
            stacklevel=2,
        )
    sub = frame.to_numpy(dtype=float)[np.ix_(ok, ok)]
    if sub.size == 0 or not np.all(np.isfinite(sub)):
        return np.nan
    w = np.linalg.eigvalsh(sub)
    return float(w[-1] / w[0]) if w[0] > 0 else np.inf


def _row_params(layout):
    """The model parameter behind each row of ``derived_quantities`` (None: correlation)."""
    names = list(layout.param_names)
    rows = list(names)
    rows += [names[j] for _, j in layout.cov_pairs]
    if getattr(layout, "general", False):
        re_rows = [names[j] for _, j, _ in random_effect_rows(layout)]
        return rows + re_rows * 2 + ([None] if layout.estimate_df else [])
    rows += list(layout.random_effects) * 2  # SDs, then variances
    rows += [None] * sum(len(b) * (len(b) - 1) // 2 for b in layout.blocks)
    return rows


def _profile_frame(profile, result, confidence):
    """``parameter, lower, upper`` (free-parameter scale) from a profile in any form."""
    from ._profile import PopulationProfile, profile_intervals

    if isinstance(profile, pd.DataFrame):
        missing = {"parameter", "lower", "upper"} - set(profile.columns)
        if missing:
            raise ValueError(f"profile table lacks column(s) {sorted(missing)}")
        return profile
    if isinstance(profile, PopulationProfile):
        profile = profile.result
    if not hasattr(profile, "profile_result"):
        raise TypeError(
            "profile must be a profile table, a PopulationProfile or a pypesto.Result, "
            f"got {type(profile).__name__}"
        )
    return profile_intervals(profile, result.x_names, result.x, confidence)


def _profile_columns(table, layout, frame):
    """Profile bounds of every row of ``table`` on its own (estimation) scale."""
    bounds = {str(p): (lo, hi) for p, lo, hi in frame[["parameter", "lower", "upper"]].values}
    unknown = sorted(set(bounds) - set(layout.x_names))
    if unknown:
        raise ValueError(f"profiled parameter(s) {unknown} are not free parameters of the fit")
    lo = np.full(len(table), np.nan)
    hi = np.full(len(table), np.nan)
    for i, (name, kind) in enumerate(zip(table["parameter"], table["kind"], strict=True)):
        if kind in ("fixed effect", "covariate effect", "residual error") and name in bounds:
            lo[i], hi[i] = bounds[name]
        elif kind in ("SD", "variance"):
            close = name.index(")")  # SD(p) or SD(p)[column=level]
            key = f"log_var({name[name.index('(') + 1 : close]}){name[close + 1 :]}"
            if key in bounds:  # monotone in log_var: the ends map over
                power = 0.5 if kind == "SD" else 1.0
                with np.errstate(over="ignore"):
                    lo[i], hi[i] = np.exp(power * np.asarray(bounds[key], dtype=float))
        elif kind == "df" and "log_df" in bounds:  # df = exp(log_df), monotone
            with np.errstate(over="ignore"):
                lo[i], hi[i] = np.exp(np.asarray(bounds["log_df"], dtype=float))
    return lo, hi


def parameter_table(result, error_params=(), confidence=0.95, profile=None):
    """Population parameters on the estimation and the natural scale.

    Parameters
    ----------
    result : PopulationFitResult
        A fit result (``NLMEPopulationEstimator.result_``).
    error_params : sequence of str, default=()
        Residual-error parameters (``model.error_params``): their fixed effects
        get the kind ``"residual error"``.
    confidence : float, default=0.95
        Level of the Wald intervals (and of the profile intervals when
        ``profile`` holds the profiles themselves).
    profile : DataFrame, PopulationProfile or pypesto.Result, default=None
        Profiles of the fit: the table of :meth:`NLMEPopulationEstimator.profile`
        (``parameter, lower, upper`` of free parameters), a
        :class:`PopulationProfile` or the pyPESTO result with the profiles
        (``profile_result_``; intervals at ``confidence``). None: the profile
        columns are NaN.

    Returns
    -------
    DataFrame
        The columns of :meth:`PopulationFitResult.summary` (``rse_percent``
        NaN where the estimate is on the log scale or a correlation),
        ``profile_lower, profile_upper`` and ``natural_parameter,
        natural_estimate, natural_se, natural_rse_percent, natural_ci_lower,
        natural_ci_upper, natural_profile_lower, natural_profile_upper`` (see
        the module notes). ``attrs`` hold ``ofv`` (``-2 loglik``), ``aic``,
        ``bic`` (with ``n_observations``, as R's ``BIC()`` on nlme),
        ``loglik``, ``n_parameters``, ``n_observations``, ``likelihood``,
        ``correlation`` (:func:`estimate_correlation` of the free parameters)
        and ``condition_number`` (:func:`condition_number`).

    Examples
    --------
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme.population import NLMEPopulationEstimator, parameter_table
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(20, random_state=0)
    >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
    ...                               n_starts=2, random_state=0).fit(X)
    >>> table = parameter_table(pop.result_)
    >>> list(table.natural_parameter)
    ['theta0', 'SD(theta0)', 'Var(theta0)']
    >>> bool(table.attrs["ofv"] == -2 * pop.loglik_)
    True
    >>> table = parameter_table(pop.result_, profile=pop.profile())
    >>> bool(table.profile_lower[0] < table.estimate[0] < table.profile_upper[0])
    True
    """
    base = result.summary(confidence)
    table = base.copy()
    params = _row_params(result.layout)
    kind = table["kind"].to_numpy(dtype=object)
    est, se = table["estimate"].to_numpy(float), table["se"].to_numpy(float)
    lo, hi = table["ci_lower"].to_numpy(float), table["ci_upper"].to_numpy(float)
    logs = np.array([p is not None and is_log_scale(p) for p in params])
    effect = np.isin(kind, ["fixed effect", "covariate effect"])
    with np.errstate(divide="ignore", invalid="ignore"):
        rse = 100 * se / np.abs(est)
    rse[(effect & logs) | (kind == "correlation")] = np.nan
    table["rse_percent"] = rse
    kind[(kind == "fixed effect") & np.isin(table["parameter"], list(error_params))] = (
        "residual error"
    )
    table["kind"] = kind
    p_lo, p_hi = np.full(len(table), np.nan), np.full(len(table), np.nan)
    if profile is not None:
        frame = _profile_frame(profile, result, confidence)
        p_lo, p_hi = _profile_columns(table, result.layout, frame)
    table.insert(list(table.columns).index("ci_upper") + 1, "profile_lower", p_lo)
    table.insert(list(table.columns).index("profile_lower") + 1, "profile_upper", p_hi)

    nat_name = table["parameter"].to_numpy(dtype=object).copy()
    n_est, n_se, n_rse = est.copy(), se.copy(), rse.copy()
    n_lo, n_hi = lo.copy(), hi.copy()
    n_plo, n_phi = p_lo.copy(), p_hi.copy()
    exp_rows = effect & logs
    for i in np.flatnonzero(exp_rows):
        name = table["parameter"].iat[i]
        nat_name[i] = params[i][4:] if kind[i] != "covariate effect" else f"exp({name})"
        n_est[i] = np.exp(est[i])
        n_se[i], n_rse[i] = n_est[i] * se[i], 100 * se[i]
        n_lo[i], n_hi[i] = np.exp(lo[i]), np.exp(hi[i])
        with np.errstate(over="ignore"):
            n_plo[i], n_phi[i] = np.exp(p_lo[i]), np.exp(p_hi[i])
    for i in np.flatnonzero((kind == "SD") & logs):
        name = table["parameter"].iat[i]
        nat_name[i] = f"CV%({params[i][4:]})" + name[name.index(")") + 1 :]  # + [group]
        cv, d = lognormal_cv(est[i])
        n_est[i], n_se[i] = cv, d * se[i]
        with np.errstate(divide="ignore", invalid="ignore"):
            n_rse[i] = 100 * n_se[i] / cv
        n_lo[i], n_hi[i] = lognormal_cv(lo[i])[0], lognormal_cv(hi[i])[0]
        n_plo[i], n_phi[i] = lognormal_cv(p_lo[i])[0], lognormal_cv(p_hi[i])[0]
    fixed = table.pop("fixed")
    table = table.assign(
        natural_parameter=nat_name,
        natural_estimate=n_est,
        natural_se=n_se,
        natural_rse_percent=n_rse,
        natural_ci_lower=n_lo,
        natural_ci_upper=n_hi,
        natural_profile_lower=n_plo,
        natural_profile_upper=n_phi,
        fixed=fixed,
    )
    corr = estimate_correlation(result.covariance_x, result.x_names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # inverse_hessian already named them
        kappa = condition_number(corr)
    table.attrs.update(
        base.attrs,
        ofv=-2 * result.loglik,
        n_parameters=len(result.x),
        n_observations=result.n_observations,
        correlation=corr,
        condition_number=kappa,
    )
    return table
