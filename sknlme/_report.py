"""Report folder of a population fit: estimates, text summary and figures."""

from __future__ import annotations

import hashlib
import platform
import time
from importlib import metadata
from pathlib import Path

import numpy as np

_VERSIONED = ("sknlme", "bayesflow", "keras", "jax", "pypesto", "numpy", "scipy", "pandas")


def file_sha256(path):
    """SHA-256 of a file, in hex (the network's fingerprint in reports).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from sknlme._report import file_sha256
    >>> with tempfile.TemporaryDirectory() as d:
    ...     f = pathlib.Path(d) / "x"
    ...     _ = f.write_bytes(b"abc")
    ...     file_sha256(f)[:12]
    'ba7816bf8f01'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def provenance_lines(provenance=None, random_state=None):
    """The provenance block of ``summary.txt``: inputs, seed and software versions.

    Parameters
    ----------
    provenance : dict, default=None
        ``key -> value`` lines to print first (e.g. ``data``, ``network``,
        ``network_sha256``); a missing key is printed as unknown.
    random_state : int, default=None

    Returns
    -------
    list of str

    Examples
    --------
    >>> from sknlme._report import provenance_lines
    >>> lines = provenance_lines({"data": "study.csv"}, random_state=0)
    >>> lines[1], lines[2]
    ('data: study.csv', 'network: unknown')
    """
    info = {"data": "unknown", "network": "unknown", "network_sha256": "unknown"}
    info.update(provenance or {})
    lines = ["Provenance:"] + [f"{k}: {v}" for k, v in info.items()]
    lines.append(f"random_state: {random_state}")
    for name in _VERSIONED:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = "not installed"
        lines.append(f"{name}: {version}")
    lines.append(f"python: {platform.python_version()}")
    return lines


def describe_starts(estimator):
    """How many optimiser runs reached the best value, in words (for reports and the CLI).

    With the importance likelihood only the best amortized end points are refined on
    the exact likelihood, so the count is out of those refinements, not of all starts.

    Parameters
    ----------
    estimator : NLMEPopulationEstimator
        A fitted estimator.

    Returns
    -------
    str

    Examples
    --------
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.population import NLMEPopulationEstimator
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme._report import describe_starts
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(20, random_state=0)
    >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=20,
    ...                               n_starts=2, likelihood="amortized", random_state=0).fit(X)
    >>> describe_starts(pop)
    '2 of 2 starts reached the best value'
    """
    runs = len(estimator.optimize_result_.optimize_result.list)
    text = f"{estimator.n_starts_converged_} of {runs}"
    if estimator.likelihood_ == "importance":
        return (
            f"{estimator.n_starts} starts; {text} refinements on the exact likelihood "
            "reached the best value"
        )
    return f"{text} starts reached the best value"


def describe_loglik(estimator):
    """The log-likelihood line of reports and the CLI, with AIC and BIC where comparable.

    An amortized log-likelihood holds an unknown constant (it depends on the
    data and the network): it is marked as not comparable across models and
    tools, and no AIC or BIC is printed for it.

    Parameters
    ----------
    estimator : NLMEPopulationEstimator
        A fitted estimator.

    Returns
    -------
    str

    Examples
    --------
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.population import NLMEPopulationEstimator
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme._report import describe_loglik
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(20, random_state=0)
    >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=20,
    ...                               n_starts=2, likelihood="amortized", random_state=0).fit(X)
    >>> "no AIC/BIC" in describe_loglik(pop)
    True
    """
    if estimator.likelihood_ != "importance":
        return (
            f"log-likelihood {estimator.loglik_:.3f} (amortized: up to a constant, "
            "not comparable across models or tools; no AIC/BIC)"
        )
    return (
        f"log-likelihood {estimator.loglik_:.3f}  AIC {estimator.aic_:.2f}  "
        f"BIC {estimator.bic_:.2f}"
    )


def _savefig(fig, path, written):
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=120)
    plt.close(fig)
    written.append(path)


def _calibration_simulations(model, X, n, random_state):
    """``n`` simulations for the calibration check, on the model's designs if it has any.

    A model rebuilt from a saved network (e.g. a ``FunctionModel`` trained on a
    study's designs) may have no design distribution; the fitted data's designs,
    resampled with their covariates, then stand in.
    """
    from sklearn.utils import check_random_state

    try:
        model.sample_design(1, random_state=0)
    except (NotImplementedError, ValueError):
        rows = check_random_state(random_state).randint(0, len(X), size=n)
        design = X.iloc[rows].reset_index(drop=True)
        return model.simulate(design=design, random_state=random_state)
    return model.simulate(n, random_state=random_state)


def write_report(
    estimator,
    X,
    out_dir,
    *,
    profile=True,
    calibration=True,
    random_state=0,
    provenance=None,
    n_simulations=1000,
    units=None,
):
    """Write the report of a fitted :class:`~sknlme.NLMEPopulationEstimator`.

    Files written to ``out_dir``: ``estimates.csv`` (the summary table),
    ``individual_estimates.csv`` (``predict(X)``), the pharmacometric tables
    ``parameters.csv`` (``parameter_table``: both scales, with the profile
    intervals when ``profile``), ``correlation.csv``
    (of the estimates), ``observations.csv`` (``observation_table``: PRED,
    IPRED, IWRES, WRES, CWRES, NPDE), ``individuals.csv``
    (``individual_table``), ``shrinkage.csv``, ``summary.txt`` (with OFV,
    condition number and provenance), and PNG
    figures (see :doc:`/user_guide/diagnostics`): ``gof.png`` (goodness-of-fit
    panel), ``individual_fits.png`` (IPRED and PRED), ``observed_vs_predicted.png``,
    ``vpc.png`` (nominal-time bins), ``pcvpc.png`` (prediction-corrected, when
    every PRED is non-negative; censoring-aware),
    ``eta_covariates.png`` (when the data have covariates), ``profiles.png``
    (when ``profile``) and ``calibration.png`` (when ``calibration``: posterior
    calibration on fresh simulations of the model).

    Parameters
    ----------
    estimator : NLMEPopulationEstimator
        A fitted estimator.
    X : DataFrame
        The individuals table it was fitted on.
    out_dir : str or Path
    profile : bool, default=True
        Compute profile likelihoods (the slowest part).
    calibration : bool, default=True
        Check the posterior network on simulations.
    random_state : int, default=0
        Seeds the VPC, the NPDE simulations and the calibration check.
    provenance : dict, default=None
        Inputs to record in ``summary.txt`` (``data``, ``network``,
        ``network_sha256``); see :func:`provenance_lines`.
    n_simulations : int, default=1000
        Replicates of each individual for NPDE.
    units : dict, default=None
        Axis units of the figures, ``{"time": "h", "conc": "mg/L"}``; without
        them the labels say no units were given.

    Returns
    -------
    list of Path
        The files written.

    Examples
    --------
    >>> import tempfile
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sknlme.models import LinearGaussian
    >>> from sknlme.population import NLMEPopulationEstimator
    >>> from sknlme.posterior import ExactGaussianPosterior
    >>> from sknlme._report import write_report
    >>> model = LinearGaussian(n_params=1, sigma=0.3)
    >>> X, _ = model.simulate(20, random_state=0)
    >>> pop = NLMEPopulationEstimator(ExactGaussianPosterior(model).fit(), n_samples=20,
    ...                               n_starts=2, random_state=0).fit(X)
    >>> with tempfile.TemporaryDirectory() as out:
    ...     files = write_report(pop, X, out, profile=False, calibration=False)
    >>> sorted(f.name for f in files)  # doctest: +NORMALIZE_WHITESPACE
    ['correlation.csv', 'estimates.csv', 'gof.png', 'individual_estimates.csv',
     'individual_fits.png', 'individuals.csv', 'observations.csv',
     'observed_vs_predicted.png', 'parameters.csv', 'pcvpc.png', 'shrinkage.csv',
     'summary.txt', 'vpc.png']
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from . import plotting

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    posterior = estimator.posterior
    model = posterior.model

    table = estimator.summary()
    table.to_csv(out / "estimates.csv")
    written.append(out / "estimates.csv")
    phi_hat = estimator.predict(X)
    phi_hat.to_csv(out / "individual_estimates.csv")
    written.append(out / "individual_estimates.csv")
    profile_table = None
    if profile:  # first: parameters.csv then carries the profile intervals
        profile_table = estimator.profile()
        profile_table.to_csv(out / "profiles.csv")
        written.append(out / "profiles.csv")
        _savefig(plotting.plot_profiles(estimator), out / "profiles.png", written)
    params = estimator.parameter_table()
    observations = estimator.observation_table(X, n_simulations, random_state)
    tables = {
        "parameters.csv": params,
        "correlation.csv": params.attrs["correlation"],
        "observations.csv": observations,
        "individuals.csv": estimator.individual_table(X),
        "shrinkage.csv": estimator.shrinkage(X, observations),
    }
    for name, frame in tables.items():
        frame.to_csv(out / name, index=name != "observations.csv")
        written.append(out / name)

    effects = estimator.covariate_effects_
    means = estimator.fixed_effects_.to_numpy() + (
        X[list(effects.index)].to_numpy(dtype=float) @ effects.to_numpy()
    )
    cov = estimator.covariance_.to_numpy()
    _savefig(plotting.plot_gof(observations, units=units), out / "gof.png", written)
    _savefig(
        plotting.plot_individual_fits(model, X, phi_hat, population_phi=means, units=units),
        out / "individual_fits.png",
        written,
    )
    _savefig(
        plotting.plot_observed_vs_predicted(model, X, phi_hat, units=units),
        out / "observed_vs_predicted.png",
        written,
    )
    vpc = {"n_replicates": 200, "units": units, "random_state": random_state}
    _savefig(plotting.plot_vpc(model, X, means, cov, **vpc), out / "vpc.png", written)
    if (observations["PRED"] >= 0).all():  # censored data too: censoring-aware pcVPC
        _savefig(
            plotting.plot_vpc(model, X, means, cov, pred_corrected=True, **vpc),
            out / "pcvpc.png",
            written,
        )
    individuals = tables["individuals.csv"]
    etas = [c for c in individuals.columns if str(c).startswith("ETA(")]
    covariate_columns = [
        c
        for c in individuals.columns[: list(individuals.columns).index(model.param_names[0])]
        if c not in etas
    ]
    if etas and covariate_columns:
        _savefig(
            plotting.plot_eta_covariates(individuals, covariate_columns),
            out / "eta_covariates.png",
            written,
        )
    if calibration:
        X_val, phi_val = _calibration_simulations(model, X, 200, random_state)
        _savefig(
            plotting.plot_calibration_ecdf(
                posterior.sample(X_val, 100, random_state=random_state),
                phi_val.to_numpy(),
                param_names=list(model.param_names),
            ),
            out / "calibration.png",
            written,
        )

    lines = [
        f"sknlme population fit — {time.strftime('%Y-%m-%d %H:%M:%S')}",
        f"model: {model.name} ({', '.join(model.param_names)})",
        f"individuals: {len(X)}",
        f"covariance: {estimator.covariance}, likelihood: {estimator.likelihood_}",
        f"starts: {describe_starts(estimator)}",
        describe_loglik(estimator),
        f"OFV (-2 log-likelihood): {params.attrs['ofv']:.3f}"
        + ("" if estimator.likelihood_ == "importance" else " (amortized: up to a constant)"),
        f"condition number of the correlation matrix of the estimates: "
        f"{params.attrs['condition_number']:.4g}",
        "",
        params[list(table.columns)].to_string(float_format=lambda v: f"{v:.4g}"),
        "",
        "Natural scale (exp of log-scale parameters, omega as CV %):",
        params[
            [
                "natural_parameter",
                "natural_estimate",
                "natural_se",
                "natural_rse_percent",
                "natural_ci_lower",
                "natural_ci_upper",
            ]
            + (["natural_profile_lower", "natural_profile_upper"] if profile else [])
        ].to_string(float_format=lambda v: f"{v:.4g}"),
        "",
        "Shrinkage (SD-based, %):",
        tables["shrinkage.csv"].to_string(float_format=lambda v: f"{v:.4g}"),
    ]
    if profile_table is not None:
        lines += [
            "",
            "Profile-likelihood 95% confidence intervals:",
            profile_table.to_string(float_format=lambda v: f"{v:.4g}"),
        ]
    ess = getattr(estimator, "ess_", None)
    if ess is not None:
        lines += [
            "",
            f"importance sampling ESS per individual: min {np.min(ess):.1f}, "
            f"median {np.median(ess):.1f}",
        ]
    lines += ["", *provenance_lines(provenance, random_state)]
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    written.append(out / "summary.txt")
    return written
