"""Theophylline: a classic NLME fit with the shipped network, compared with R nlme.

Twelve subjects received one oral dose of theophylline (R's ``Theoph`` data).
The one-compartment oral model (R nlme's ``SSfol``: log_ke, log_ka, log_Cl,
plus the log residual SD) is fitted with the network shipped with sknlme (no
training) and the importance-sampling likelihood, which integrates the exact
observation likelihood over the random effects, so that the log-likelihood,
AIC and BIC compare with R nlme's maximum-likelihood fit::

    nlme(conc ~ SSfol(Dose, Time, lKe, lKa, lCl), data = Theoph,
         random = pdDiag(lKe + lKa + lCl ~ 1), method = "ML")

The script prints the parameter table, the estimates next to R nlme's, and
writes ``individual_fits.png`` (data and individual predictions),
``vpc.png`` (visual predictive check) and ``estimates.csv`` to the output
folder. It takes about 10 s.

Run::

    python examples/theophylline.py [--out DIR] [--n-starts 10] [--random-state 0]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.frozen import FrozenEstimator  # noqa: E402

import sknlme  # noqa: E402
from sknlme.plotting import plot_individual_fits, plot_vpc  # noqa: E402
from sknlme.population import NLMEPopulationEstimator  # noqa: E402

# R nlme, SSfol, pdDiag, method = "ML" (DESIGN.md section 7)
R_NLME = {
    "log_ke": -2.4546,
    "log_ka": 0.4655,
    "log_Cl": -3.2272,
    "SD(log_ke)": 3e-5,
    "SD(log_ka)": 0.644,
    "SD(log_Cl)": 0.167,
    "residual SD": 0.709,
    "log-likelihood": -177.02,
}
# nlme counts 4 fixed effects (3 structural + the residual SD) and 3 variances
R_N_PARAMS = 7


def fit(n_starts=10, random_state=0):
    """Fit the theophylline study; returns (data, fitted estimator, seconds)."""
    X = sknlme.datasets.load_theophylline()
    post = sknlme.datasets.pretrained("one-compartment-oral")
    pop = NLMEPopulationEstimator(
        FrozenEstimator(post),
        random_effects=["log_ke", "log_ka", "log_Cl"],
        likelihood="importance",
        n_starts=n_starts,
        random_state=random_state,
    )
    start = time.perf_counter()
    pop.fit(X)
    return X, pop, time.perf_counter() - start


def comparison(pop, n_individuals):
    """sknlme's estimates next to R nlme's, one row per quantity."""
    fe, sd = pop.fixed_effects_, pop.random_effects_
    ours = {
        "log_ke": fe["log_ke"],
        "log_ka": fe["log_ka"],
        "log_Cl": fe["log_Cl"],
        "SD(log_ke)": sd["log_ke"],
        "SD(log_ka)": sd["log_ka"],
        "SD(log_Cl)": sd["log_Cl"],
        "residual SD": np.exp(fe["log_sigma"]),
        "log-likelihood": pop.loglik_,
    }
    r_loglik = R_NLME["log-likelihood"]
    rows = dict(ours)
    table = pd.DataFrame({"sknlme": pd.Series(rows), "R nlme": pd.Series(R_NLME)})
    table.loc["AIC"] = [pop.aic_, 2 * R_N_PARAMS - 2 * r_loglik]
    table.loc["BIC"] = [pop.bic_, R_N_PARAMS * np.log(n_individuals) - 2 * r_loglik]
    table["difference"] = table["sknlme"] - table["R nlme"]
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="examples-out/theophylline", help="output folder")
    parser.add_argument("--n-starts", type=int, default=10, help="optimiser starts")
    parser.add_argument("--random-state", type=int, default=0)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    X, pop, seconds = fit(args.n_starts, args.random_state)
    print(
        f"Theophylline: {len(X)} subjects, fitted in {seconds:.1f} s "
        f"({pop.n_starts_converged_} of {args.n_starts} starts reached the best value)\n"
    )
    table = pop.summary()
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    table.to_csv(out / "estimates.csv", index=False)

    print("\nsknlme (importance likelihood) against R nlme (ML, SSfol):")
    print(comparison(pop, len(X)).to_string(float_format=lambda v: f"{v:.4f}"))
    print(
        f"\nimportance-sampling ESS per subject: min {pop.ess_.min():.0f}, "
        f"median {pop.ess_.median():.0f} (of {10 * pop.n_samples} draws)"
    )
    # nlme's likelihood is a linearisation (Lindstrom-Bates), ours integrates the
    # exact one: a difference below about 1 in the log-likelihood is expected.

    model = pop.posterior.model
    phi_hat = pop.predict(X)  # conditional means of the individual parameters
    fig = plot_individual_fits(model, X, phi_hat)
    fig.savefig(out / "individual_fits.png", dpi=110)
    plt.close(fig)
    fig = plot_vpc(
        model,
        X,
        pop.fixed_effects_.to_numpy(),
        pop.covariance_.to_numpy(),
        n_replicates=200,
        random_state=args.random_state,
    )
    fig.savefig(out / "vpc.png", dpi=110)
    plt.close(fig)
    print(f"\nwrote estimates.csv, individual_fits.png, vpc.png to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
