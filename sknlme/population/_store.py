"""Fit results in one HDF5 file: pyPESTO's store plus a small sknlme group.

pyPESTO's :func:`pypesto.store.write_result` writes the problem (names,
bounds), every optimiser start, the profiles and the MCMC chain; the
``sknlme`` group adds what pyPESTO does not know: the chosen estimate, its
log-likelihood and likelihood kind, and the MCMC burn-in. The objective
itself (the posterior draws) is not stored: a loaded result serves plots and
comparisons (``sknlme.plotting.plot_profiles(stored.result)``), not refits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pypesto
import pypesto.store

__all__ = ["StoredResults", "load_results", "save_results"]

_GROUP = "sknlme"


def _as_fit(fit):
    """``(PopulationFitResult, profile, posterior)`` from an estimator or a fit."""
    if hasattr(fit, "optimize_result") and hasattr(fit, "x_names"):
        return fit, None, None
    if hasattr(fit, "result_"):
        return fit.result_, getattr(fit, "profile_result_", None), getattr(fit, "posterior_", None)
    raise TypeError(
        "fit must be a fitted NLMEPopulationEstimator or a PopulationFitResult, "
        f"got {type(fit).__name__}"
    )


def save_results(fit, filename, profile=None, posterior=None, overwrite=False):
    """Write a population fit (optimisation, profiles, MCMC draws) to one HDF5 file.

    Parameters
    ----------
    fit : NLMEPopulationEstimator or PopulationFitResult
        A fitted estimator (its ``profile_result_`` and ``posterior_`` are
        written too when present) or its ``result_``.
    filename : str or path
        The HDF5 file.
    profile : PopulationProfile or pypesto.Result, default=None
        Profiles to write (overrides the estimator's ``profile_result_``).
    posterior : PopulationPosterior or pypesto.Result, default=None
        MCMC draws to write (overrides the estimator's ``posterior_``).
    overwrite : bool, default=False
        Replace an existing file; otherwise an existing file raises.

    Returns
    -------
    Path
        ``filename``.

    Examples
    --------
    >>> import tempfile, os
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme.population import NLMEPopulationEstimator, load_results, save_results
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(20, random_state=0)
    >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
    ...                               n_starts=2, random_state=0).fit(X)
    >>> path = save_results(pop, os.path.join(tempfile.mkdtemp(), "fit.h5"))
    >>> list(load_results(path).x.index) == pop.x_names_
    True
    """
    fit, est_profile, est_posterior = _as_fit(fit)
    profile = est_profile if profile is None else profile
    posterior = est_posterior if posterior is None else posterior
    path = Path(filename)
    if path.exists():
        if not overwrite:
            raise FileExistsError(f"filename {str(path)!r} exists; pass overwrite=True")
        path.unlink()
    opt = fit.optimize_result
    result = pypesto.Result(opt.problem)
    result.optimize_result = opt.optimize_result
    if profile is not None:
        result.profile_result = getattr(profile, "result", profile).profile_result
    if posterior is not None:
        result.sample_result = getattr(posterior, "result", posterior).sample_result
    pypesto.store.write_result(
        result,
        path,
        problem=True,
        optimize=True,
        profile=profile is not None,
        sample=posterior is not None,
    )
    with h5py.File(path, "a") as f:
        grp = f.create_group(_GROUP)
        grp.create_dataset("x", data=np.asarray(fit.x, dtype=float))
        grp.create_dataset("x_names", data=np.array(fit.x_names, dtype=h5py.string_dtype()))
        grp.attrs.update(
            loglik=float(fit.loglik),
            likelihood=str(fit.likelihood),
            chosen_start=str(fit.chosen_start),
            has_profile=profile is not None,
            has_sample=posterior is not None,
        )
        if posterior is not None and hasattr(posterior, "samples"):
            # where the kept draws start (the second half when the Geweke test failed)
            grp.attrs["burn_in"] = len(posterior.trace) - len(posterior.samples)
    return path


@dataclass(frozen=True, eq=False)
class StoredResults:
    """A population fit read back from :func:`save_results`.

    Attributes
    ----------
    result : pypesto.Result
        Problem, optimisation starts, and the profiles and sampling results
        when they were written (for pyPESTO's and sknlme's plots).
    x : Series
        The chosen estimate, indexed by ``x_names``.
    loglik : float
        Its log-likelihood (re-scoring draws).
    likelihood : str
        ``"amortized"`` or ``"importance"``.
    chosen_start : str
        Id of the chosen optimiser start.
    samples : DataFrame or None
        MCMC draws after burn-in, one column per free parameter.

    Examples
    --------
    >>> from sknlme.population import StoredResults
    >>> "samples" in StoredResults.__dataclass_fields__
    True
    """

    result: pypesto.Result
    x: pd.Series
    loglik: float
    likelihood: str
    chosen_start: str
    samples: pd.DataFrame | None


def load_results(filename):
    """Read a fit written by :func:`save_results`.

    Parameters
    ----------
    filename : str or path
        The HDF5 file.

    Returns
    -------
    StoredResults

    Examples
    --------
    >>> import tempfile, os
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme.population import NLMEPopulationEstimator, load_results, save_results
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(20, random_state=0)
    >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=50,
    ...                               n_starts=2, random_state=0).fit(X)
    >>> stored = load_results(save_results(pop, os.path.join(tempfile.mkdtemp(), "fit.h5")))
    >>> bool(stored.result.optimize_result[0].fval == pop.optimize_result_.optimize_result[0].fval)
    True
    """
    path = Path(filename)
    if not path.is_file():
        raise FileNotFoundError(f"filename {str(path)!r} does not exist")
    with h5py.File(path, "r") as f:
        if _GROUP not in f:
            raise ValueError(f"filename {str(path)!r} was not written by save_results")
        grp = f[_GROUP]
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in grp["x_names"][()]]
        x = pd.Series(grp["x"][()], index=names, name="x")
        attrs = dict(grp.attrs)
    result = pypesto.store.read_result(
        path,
        problem=True,
        optimize=True,
        profile=bool(attrs["has_profile"]),
        sample=bool(attrs["has_sample"]),
        with_history=False,
    )
    samples = None
    if attrs["has_sample"]:
        chain = np.asarray(result.sample_result.trace_x[0], dtype=float)
        samples = pd.DataFrame(chain[int(attrs.get("burn_in", 0)) :], columns=names)
    return StoredResults(
        result=result,
        x=x,
        loglik=float(attrs["loglik"]),
        likelihood=str(attrs["likelihood"]),
        chosen_start=str(attrs["chosen_start"]),
        samples=samples,
    )
