"""Per-observation and per-individual tables of a population fit, and shrinkage.

Definitions (as NONMEM, PsN and the npde package use them):

- ``PRED``: prediction at the population mean parameters ``m_i = beta + B^T c_i``
  (with covariates); ``IPRED``: at the individual estimate, the conditional
  mean ``E[phi_i | y_i]`` of :meth:`NLMEPopulationEstimator.predict`.
- ``RES = DV - PRED``, ``IRES = DV - IPRED``, ``IWRES = IRES / sd(IPRED)``
  with ``sd`` the residual SD of the model's error model.
- ``WRES`` (FO) and ``CWRES`` (FOCE, Hooker et al. 2007): the residuals of the
  model linearised in the random effects ``eta`` around 0 and around the
  individual estimate, decorrelated by the Cholesky factor of
  ``G Omega G^T + R`` (``G``: central-difference Jacobian of the predictions
  with respect to the parameters with a random effect; ``R``: residual
  variances at the linearisation point).
- ``NPDE`` (Brendel et al. 2006, Comets et al. 2008): each individual's design
  is simulated ``n_simulations`` times from the fitted population; observed
  and simulated vectors are decorrelated with the simulated mean and
  covariance, ``pde`` is the fraction of simulated values below the observed
  one (``1/(2K)`` and ``1 - 1/(2K)`` at the ends) and ``npde = Phi^-1(pde)``.
- Shrinkage (SD-based, as NONMEM): ``1 - SD(ETA_j) / omega_j`` for each random
  effect (ETA = conditional mean - population mean) and ``1 - SD(IWRES)``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state

from ._base import population_means
from ._inputs import covariate_design
from ._residual_math import decorrelated_residuals, npde_from_simulations, residual_sd
from ._tables import is_log_scale

__all__ = ["individual_table", "observation_table", "shrinkage"]


def _population_means(estimator, study):
    effects = estimator.covariate_effects_
    C = covariate_design(study.covariates, estimator.covariates)
    beta = estimator.fixed_effects_.to_numpy(dtype=float)
    return population_means(beta, effects.to_numpy(dtype=float), C)


def _jacobian(model, study, phi, cols, rel_step=1e-5):
    """d predictions / d phi[:, cols], shape (n, T, k, q), by central differences."""
    out = []
    for j in cols:
        h = rel_step * np.maximum(1.0, np.abs(phi[:, j]))
        up, down = phi.copy(), phi.copy()
        up[:, j] += h
        down[:, j] -= h
        diff = model.predict(up, study) - model.predict(down, study)
        out.append(diff / (2 * h)[:, None, None])
    return np.stack(out, axis=-1)


def _fit_values(estimator, X):
    """Study, population means, EBEs, PRED, IPRED and the random-effect columns."""
    layout = estimator.result_.layout
    if getattr(layout, "general", False):
        # residuals, NPDE and shrinkage assume one normal Omega for every individual
        raise NotImplementedError(
            "observation_table, individual_table and shrinkage do not support "
            "variance_groups or random_effects_distribution='student_t' yet"
        )
    model = estimator.posterior.model
    study = model.prepare(X)
    means = _population_means(estimator, study)
    ebe = estimator.predict(X).to_numpy(dtype=float)
    re = list(estimator.random_effects_.index)
    cols = [list(model.param_names).index(p) for p in re]
    return {
        "model": model,
        "study": study,
        "means": means,
        "ebe": ebe,
        "cols": cols,
        "omega": estimator.covariance_.to_numpy(dtype=float)[np.ix_(cols, cols)],
        "pred": model.predict(means, study),
        "ipred": model.predict(ebe, study),
    }


def _simulate(v, n_simulations, rng):
    """Simulated observations (n, K, T, k) of every individual's design."""
    model, study, means, cols = v["model"], v["study"], v["means"], v["cols"]
    n, K = len(means), n_simulations
    phi = np.repeat(means, K, axis=0)
    L = np.linalg.cholesky(v["omega"]) if cols else np.zeros((0, 0))
    phi[:, cols] += rng.standard_normal((n * K, len(cols))) @ L.T
    rows = np.repeat(np.arange(n), K)
    cov = study.covariates.iloc[rows] if study.covariates is not None else None
    sims = model.simulate_padded(phi, study.padded.take(rows), cov, random_state=rng)
    return sims.reshape((n, K) + sims.shape[1:])


def observation_table(estimator, X, n_simulations=1000, random_state=None):
    """One row per observed value: ID, TIME, DV, PRED, IPRED and residuals.

    See the module notes for the definitions.

    Parameters
    ----------
    estimator : NLMEPopulationEstimator
        A fitted estimator.
    X : DataFrame
        Individuals table (normally the one it was fitted on).
    n_simulations : int, default=1000
        Simulated replicates of each individual for NPDE (0: no NPDE column).
    random_state : int, RandomState or None, default=None
        Seeds the simulations.

    Returns
    -------
    DataFrame
        Columns ``ID, TIME, [OUTPUT,] DV, PRED, IPRED, RES, IRES, IWRES, WRES,
        CWRES, NPDE`` (``OUTPUT`` only for a model with several outputs).

    Examples
    --------
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme.population import NLMEPopulationEstimator, observation_table
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(10, random_state=0)
    >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
    ...                               n_starts=2, random_state=0).fit(X)
    >>> table = observation_table(pop, X, n_simulations=200, random_state=0)
    >>> table.shape, list(table.columns[:5])
    ((50, 11), ['ID', 'TIME', 'DV', 'PRED', 'IPRED'])
    """
    v = _fit_values(estimator, X)
    model, study, cols, omega = v["model"], v["study"], v["cols"], v["omega"]
    padded = study.padded
    mask = padded.value_mask()  # (n, T, k)
    y = padded.values
    sd_pred = residual_sd(model, v["pred"], v["means"])
    sd_ipred = residual_sd(model, v["ipred"], v["ebe"])
    G_pred = _jacobian(model, study, v["means"], cols)
    G_ebe = _jacobian(model, study, v["ebe"], cols)
    sims = None
    if n_simulations:
        sims = _simulate(v, int(n_simulations), check_random_state(random_state))
    n, T, k = y.shape
    wres, cwres, npde = (np.full(y.shape, np.nan) for _ in range(3))
    for i in range(n):
        m = mask[i].reshape(-1)
        if not m.any():
            continue
        yi = y[i].reshape(-1)[m]
        gp = G_pred[i].reshape(T * k, -1)[m]
        ge = G_ebe[i].reshape(T * k, -1)[m]
        pred_i, ipred_i = v["pred"][i].reshape(-1)[m], v["ipred"][i].reshape(-1)[m]
        flat = np.flatnonzero(m)
        wres[i].reshape(-1)[flat] = decorrelated_residuals(
            yi, pred_i, gp, omega, sd_pred[i].reshape(-1)[m] ** 2
        )
        shift = (v["ebe"][i] - v["means"][i])[cols]
        cwres[i].reshape(-1)[flat] = decorrelated_residuals(
            yi, ipred_i, ge, omega, sd_ipred[i].reshape(-1)[m] ** 2, shift
        )
        if sims is not None:
            npde[i].reshape(-1)[flat] = npde_from_simulations(
                yi, sims[i].reshape(len(sims[i]), -1)[:, m]
            )
    bad = np.isnan(cwres) & mask
    if bad.any() and np.isfinite(sd_ipred[mask]).all():
        warnings.warn(
            f"CWRES/WRES of {int(bad.sum())} observation(s) are NaN: a linearised "
            "covariance G Omega G^T + R that is not positive definite",
            RuntimeWarning,
            stacklevel=2,
        )
    if sims is not None and np.isnan(npde[mask]).any():
        warnings.warn(
            "NPDE of some individuals are NaN: their simulated covariance is singular",
            RuntimeWarning,
            stacklevel=2,
        )
    ids = np.broadcast_to(np.asarray(study.index, dtype=object)[:, None, None], y.shape)
    times = np.broadcast_to(padded.times[:, :, None], y.shape)
    outputs = np.broadcast_to(np.asarray(model.output_names, dtype=object), y.shape)
    columns = {"ID": ids, "TIME": times, "OUTPUT": outputs, "DV": y, "PRED": v["pred"]}
    columns.update(IPRED=v["ipred"], RES=y - v["pred"], IRES=y - v["ipred"])
    columns.update(IWRES=(y - v["ipred"]) / sd_ipred, WRES=wres, CWRES=cwres)
    if sims is not None:
        columns["NPDE"] = npde
    if k == 1:
        del columns["OUTPUT"]
    table = pd.DataFrame({name: a[mask] for name, a in columns.items()})
    return table.astype({"TIME": float})


def individual_table(estimator, X):
    """One row per individual: covariates, EBEs on both scales, ETAs.

    Parameters
    ----------
    estimator : NLMEPopulationEstimator
        A fitted estimator.
    X : DataFrame
        Individuals table.

    Returns
    -------
    DataFrame
        Indexed by ID: the covariate columns, the conditional mean of every
        parameter (model names), ``exp`` of the log-scale ones (``log_Cl`` ->
        ``Cl``), and ``ETA(p) = EBE - population mean`` for every parameter
        ``p`` with a random effect.

    Examples
    --------
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme.population import NLMEPopulationEstimator, individual_table
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(10, random_state=0)
    >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
    ...                               n_starts=2, random_state=0).fit(X)
    >>> list(individual_table(pop, X).columns)
    ['theta0', 'ETA(theta0)']
    """
    v = _fit_values(estimator, X)
    names = list(v["model"].param_names)
    study = v["study"]
    parts = [] if study.covariates is None else [study.covariates]
    ebe = pd.DataFrame(v["ebe"], index=study.index, columns=names)
    parts.append(ebe)
    logs = [p for p in names if is_log_scale(p)]
    parts.append(np.exp(ebe[logs]).rename(columns=lambda p: p[4:]))
    eta = v["ebe"][:, v["cols"]] - v["means"][:, v["cols"]]
    re = [names[j] for j in v["cols"]]
    parts.append(pd.DataFrame(eta, index=study.index, columns=[f"ETA({p})" for p in re]))
    table = pd.concat(parts, axis=1)
    table.index.name = "ID"
    return table


def shrinkage(estimator, X, observations=None):
    """SD-based eta- and epsilon-shrinkage (NONMEM's definition), in percent.

    Parameters
    ----------
    estimator : NLMEPopulationEstimator
        A fitted estimator.
    X : DataFrame
        Individuals table.
    observations : DataFrame, default=None
        :func:`observation_table` of ``X`` (its IWRES), to avoid recomputing it.

    Returns
    -------
    DataFrame
        Indexed by ``ETA(p)`` for every random effect and ``EPS``: ``omega``
        (the estimated SD; 1 for EPS), ``sd`` (SD, ``ddof=1``, of the ETAs or
        the IWRES) and ``shrinkage_percent = 100 (1 - sd / omega)``.

    Examples
    --------
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme.population import NLMEPopulationEstimator, shrinkage
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(10, random_state=0)
    >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
    ...                               n_starts=2, random_state=0).fit(X)
    >>> list(shrinkage(pop, X).index)
    ['ETA(theta0)', 'EPS']
    """
    ind = individual_table(estimator, X)
    if observations is None:
        observations = observation_table(estimator, X, n_simulations=0)
    etas = [c for c in ind.columns if c.startswith("ETA(")]
    omega = estimator.random_effects_.to_numpy(dtype=float)
    sd = ind[etas].std(ddof=1).to_numpy()
    rows = pd.DataFrame({"omega": omega, "sd": sd}, index=etas)
    rows.loc["EPS"] = [1.0, observations["IWRES"].std(ddof=1)]
    rows["shrinkage_percent"] = 100 * (1 - rows["sd"] / rows["omega"])
    return rows
