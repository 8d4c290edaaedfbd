"""Posterior draws of the population parameters: diagnostics, summary, ArviZ output."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from pypesto.sample.auto_correlation import autocorrelation_sokal
from pypesto.sample.geweke_test import calculate_zscore

from ._summary import derived_quantities

__all__ = ["PopulationPosterior", "chain_diagnostics"]


def chain_diagnostics(chain, burn_in, zscore=2.0):
    """Geweke z-scores, p-values and effective sample sizes of a chain after burn-in.

    Parameters
    ----------
    chain : ndarray of shape (n_iter, n_x)
    burn_in : int
    zscore : float, default=2.0
        Geweke threshold (the one the burn-in used).

    Returns
    -------
    z, p, ess : ndarray of shape (n_x,) each
        Geweke z-scores (first 10 % against last 50 %) and p-values of the
        chain after burn-in, and ``n / (1 + tau_j)`` with ``tau_j`` Sokal's
        integrated autocorrelation time (pyPESTO's ESS, per parameter).
    """
    kept = chain[burn_in:]
    n_x = chain.shape[1]
    if len(kept) < 20:  # too short for the test or for the autocorrelation
        return np.full(n_x, np.nan), np.full(n_x, np.nan), np.zeros(n_x)
    z, p = calculate_zscore(kept)
    tau = autocorrelation_sokal(kept)
    ess = np.where(np.ptp(kept, axis=0) > 0, len(kept) / (1.0 + tau), 0.0)  # 0: never moved
    return np.ravel(z).astype(float), np.ravel(p).astype(float), ess


def _natural(samples, layout):
    """Derived quantities (effects, SDs, variances, correlations) of each sample."""
    rows = [derived_quantities(layout.unpack(x), layout) for x in samples]
    names, kinds = ([[r[k] for r in rows[0]] for k in (0, 1)]) if rows else ([], [])
    table = pd.DataFrame([[v for _, _, v in r] for r in rows], columns=names, dtype=float)
    table.attrs["kinds"] = dict(zip(names, kinds, strict=True))
    return table


class PopulationPosterior:
    """Posterior draws of the population parameters and their diagnostics.

    Build it with :func:`sample_population` (or
    ``NLMEPopulationEstimator.sample_posterior``).

    Attributes
    ----------
    samples : DataFrame
        Draws after burn-in, one column per free parameter (``x_names``).
    natural : DataFrame
        The same draws as reported quantities: fixed and covariate effects,
        random-effect SDs (``SD(p)``), variances and correlations.
    trace : DataFrame
        The whole chain, burn-in included (``n_samples + 1`` rows: the start first).
    burn_in : int
        Iterations discarded (sequential Geweke test).
    converged : bool
        False when the Geweke test found no burn-in (then ``samples`` are the
        second half of the chain).
    geweke_z, geweke_p : Series
        Geweke z-scores and p-values of ``samples`` per parameter.
    acceptance_rate : float
        Fraction of proposals accepted.
    ess : Series
        Effective sample size per parameter; ``ess.min()`` is pyPESTO's ESS.
    result : pypesto.Result
        The pyPESTO result with ``sample_result`` (burn-in and ESS filled in),
        for pyPESTO's plots and :func:`save_results`.

    Examples
    --------
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme.population import NLMEPopulationEstimator, sample_population
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(50, random_state=0)
    >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
    ...                               n_starts=2, random_state=0).fit(X)
    >>> post = sample_population(pop.result_, n_samples=1000, random_state=0, min_ess=0)
    >>> list(post.samples.columns), list(post.natural.columns)
    (['theta0', 'log_var(theta0)'], ['theta0', 'SD(theta0)', 'Var(theta0)'])
    """

    def __init__(self, *, result, x_names, layout, burn_in, converged, zscore=2.0):
        results = list(result) if isinstance(result, list | tuple) else [result]
        chains = [np.asarray(r.sample_result.trace_x[0], dtype=float) for r in results]
        self.result = results[0]
        self.results = results
        self.x_names = list(x_names)
        self.traces = [pd.DataFrame(c, columns=self.x_names) for c in chains]
        self.trace = self.traces[0]
        self.burn_in = int(burn_in)
        self.converged = bool(converged)
        start = self.burn_in if converged else len(chains[0]) // 2
        self._start = start
        self.samples = pd.concat([t.iloc[start:] for t in self.traces], ignore_index=True)
        diag = np.array([chain_diagnostics(c, start, zscore) for c in chains])  # (chain, 3, n_x)
        worst = np.argmax(np.abs(np.nan_to_num(diag[:, 0])), axis=0)  # the chain with max |z|
        cols = np.arange(len(self.x_names))
        self.geweke_z = pd.Series(diag[worst, 0, cols], index=self.x_names, name="geweke_z")
        self.geweke_p = pd.Series(diag[worst, 1, cols], index=self.x_names, name="geweke_p")
        self.ess = pd.Series(diag[:, 2].sum(axis=0), index=self.x_names, name="ess")
        moved = np.concatenate([np.any(np.diff(c, axis=0) != 0, axis=1) for c in chains])
        self.acceptance_rate = float(moved.mean()) if len(moved) else np.nan
        self.natural = _natural(self.samples.to_numpy(), layout)

    def to_inference_data(self):
        """The draws after burn-in as ArviZ's ``InferenceData`` (an xarray ``DataTree``).

        ArviZ 1 replaced its ``InferenceData`` class by ``xarray.DataTree`` in the same
        role: every ArviZ function (``az.summary``, ``az.rhat``, ``az.ess``, the plots)
        takes it.

        Returns
        -------
        xarray.DataTree
            Group ``posterior``: one ``(chain, draw)`` variable per free parameter and
            per reported quantity of ``natural`` that is not one (``SD(p)``,
            ``Var(p)``, correlations); group ``sample_stats``: ``lp``, the log
            posterior (up to a constant) of each draw.

        Examples
        --------
        >>> import arviz as az
        >>> from sknlme.models import LinearGaussian
        >>> from sknlme.posterior import ExactGaussianPosterior
        >>> from sknlme.population import NLMEPopulationEstimator, sample_population
        >>> model = LinearGaussian(n_params=1, sigma=0.3)
        >>> X, _ = model.simulate(50, random_state=0)
        >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
        ...                               n_starts=2, random_state=0).fit(X)
        >>> post = sample_population(pop.result_, n_samples=500, n_chains=2, random_state=0,
        ...                          min_ess=0)
        >>> idata = post.to_inference_data()
        >>> dict(idata.posterior.sizes) == {"chain": 2, "draw": len(post.samples) // 2}
        True
        >>> sorted(az.summary(idata, kind="diagnostics").columns)
        ['ess_bulk', 'ess_tail', 'mcse_mean', 'mcse_sd', 'r_hat']
        """
        az = _arviz()
        m = len(self.traces)
        posterior = {
            name: col.to_numpy().reshape(m, -1)
            for part in (self.samples, self.natural.drop(columns=self.x_names, errors="ignore"))
            for name, col in part.items()
        }
        lp = np.array([-r.sample_result.trace_neglogpost[0][self._start :] for r in self.results])
        return az.from_dict({"posterior": posterior, "sample_stats": {"lp": lp}})

    def summary(self, interval=0.95):
        """Posterior mean, SD and equal-tailed interval of every reported quantity.

        Parameters
        ----------
        interval : float, default=0.95
            Probability of the central interval.

        Returns
        -------
        DataFrame
            ``parameter, kind, mean, sd, lower, upper, r_hat, ess_bulk, ess_tail``:
            the quantities of ``natural`` (SDs and variances on their natural
            scale), then the other free parameters (kind ``"free"``:
            log-variances, ...). ``r_hat`` (rank-normalised split R-hat),
            ``ess_bulk`` and ``ess_tail`` are ArviZ's (Vehtari et al. 2021), over
            all chains; ``r_hat`` is NaN with one chain (``n_chains=1``).

        Examples
        --------
        >>> from sknlme.models import LinearGaussian
        >>> from sknlme.posterior import ExactGaussianPosterior
        >>> from sknlme.population import NLMEPopulationEstimator
        >>> model = LinearGaussian(n_params=1, sigma=0.3)
        >>> X, _ = model.simulate(50, random_state=0)
        >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
        ...                               n_starts=2, random_state=0).fit(X)
        >>> post = pop.sample_posterior(n_samples=1000, random_state=0, min_ess=0)
        >>> table = post.summary()
        >>> list(table.parameter)
        ['theta0', 'SD(theta0)', 'Var(theta0)', 'log_var(theta0)']
        >>> list(table.columns[-3:])
        ['r_hat', 'ess_bulk', 'ess_tail']
        >>> bool((table.lower < table["mean"]).all() and (table["mean"] < table.upper).all())
        True
        """
        if not 0 < interval < 1:
            raise ValueError(f"interval must be in (0, 1), got {interval}")
        q = [(1 - interval) / 2, (1 + interval) / 2]
        kinds = self.natural.attrs["kinds"]
        free = self.samples.drop(columns=[n for n in self.x_names if n in kinds])
        rows = [
            (name, kinds.get(name, "free"), col.mean(), col.std(ddof=1), *col.quantile(q))
            for part in (self.natural, free)
            for name, col in part.items()
        ]
        table = pd.DataFrame(rows, columns=["parameter", "kind", "mean", "sd", "lower", "upper"])
        az = _arviz()
        idata = self.to_inference_data()
        for col, fun in (
            ("r_hat", lambda: az.rhat(idata)),
            ("ess_bulk", lambda: az.ess(idata, method="bulk")),
            ("ess_tail", lambda: az.ess(idata, method="tail")),
        ):
            with np.errstate(invalid="ignore", divide="ignore"):  # a constant draw: NaN
                values = fun()
            table[col] = [float(values[name]) for name in table["parameter"]]
        return table


def _arviz():
    """ArviZ, imported on first use (its import takes ~2 s of CPU)."""
    with warnings.catch_warnings():
        # ArviZ 1 warns on import about its removed InferenceData class
        warnings.simplefilter("ignore", Warning)
        import arviz

    return arviz
