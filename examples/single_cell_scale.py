"""Single-cell scale: recover a population of cells, and time the fit, as the population grows.

The synthetic study of Arruda et al. (ICML 2024) at small sizes. Cells follow
the simple mRNA transfection model (:class:`sknlme.models.MRNATransfection`:
180 log-fluorescence values every 10 minutes over 30 h) with log-normal
parameters. On the log scale the population means and random-effect
variances are

================  ========  ===================
parameter         mean      random-effect var.
================  ========  ===================
log_delta         -0.694    0.941
log_gamma         -7.014    7.014
log_k_m0_scale     6.217    0.00396
log_t0            -0.164    0.116
log_offset         2.079    none
log_sigma         -3.454    none
================  ========  ===================

For every population size ``N`` (``--n``) the script simulates a population
with :func:`sknlme.datasets.make_population` (its own seed per ``N``) and fits
it with the network shipped with sknlme (``pretrained("mrna-transfection")``,
wrapped in :class:`~sklearn.frozen.FrozenEstimator`: no training) and
``NLMEPopulationEstimator(covariance="diag", random_effects=<first four>,
n_samples=100)``, amortized likelihood.

``delta`` and ``gamma`` enter the model symmetrically, so the data identify
them only up to a swap: when the estimate of the pair (means and SDs) is
closer to the truth swapped, it is swapped back before comparing (column
``swapped``). The script reports the network as it is; a bias of its
posteriors becomes a bias of the population estimate that a larger ``N``
does not remove. For reference it also gives the error of the sample moments
of the simulated cells' own parameters (``oracle``: what an estimator that
saw every cell's parameters would achieve at that ``N``).

Before each fit the network draws once at the fit's sizes, so that the time
of the fit excludes the compilation of the network for new input shapes (a
few seconds per shape, reported separately as ``warm-up``). The script prints
the estimates next to the truth for every ``N``, the errors and the time per
fit, and writes ``results.csv`` (one row per ``N``) and
``scale.png`` (error and time against ``N``) to the output folder. With the
defaults (N = 50, 200, 1000; 10 starts) it takes one to two minutes on two
CPU cores.

Run::

    python examples/single_cell_scale.py [--out DIR] [--n 50 200 1000] [--n-starts 10]
                                         [--random-state 0]
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
from sknlme.population import NLMEPopulationEstimator  # noqa: E402

# log-scale population means and random-effect variances of the paper's synthetic study
TRUE_MEAN = {
    "log_delta": -0.694,
    "log_gamma": -7.014,
    "log_k_m0_scale": 6.217,
    "log_t0": -0.164,
    "log_offset": 2.079,
    "log_sigma": -3.454,
}
TRUE_VAR = {
    "log_delta": 0.941,
    "log_gamma": 7.014,
    "log_k_m0_scale": 0.00396,
    "log_t0": 0.116,
    "log_offset": 0.0,
    "log_sigma": 0.0,
}
RANDOM_EFFECTS = ["log_delta", "log_gamma", "log_k_m0_scale", "log_t0"]
SWAP = [("log_delta", "log_gamma"), ("SD(log_delta)", "SD(log_gamma)")]


def targets():
    """The true values of the ten estimated quantities: six means, four SDs."""
    sd = {f"SD({p})": np.sqrt(TRUE_VAR[p]) for p in RANDOM_EFFECTS}
    return pd.Series(TRUE_MEAN | sd)


def swap_back(values, truth):
    """Exchange delta and gamma (means and SDs) if that brings ``values`` closer to ``truth``."""

    def distance(v):
        return sum(abs(v[a] - truth[a]) + abs(v[b] - truth[b]) for a, b in SWAP)

    swapped = values.copy()
    for a, b in SWAP:
        swapped[a], swapped[b] = values[b], values[a]
    if distance(swapped) < distance(values):
        return swapped, True
    return values, False


def warm_up(post, X, n_samples):
    """Draw once at the fit's sizes so that the fit's time excludes compilation; seconds."""
    start = time.perf_counter()
    for k in (n_samples, 10 * n_samples):  # the fit draws n_samples, then 10x to re-score
        post.sample(X, k, random_state=0)
    return time.perf_counter() - start


def fit_one(post, n, n_starts, seed, n_samples=100):
    """Simulate ``n`` cells and fit them.

    Returns the estimates, the sample moments of the true parameters (oracle),
    the seconds of the warm-up draws and of the fit, and the fitted estimator.
    """
    seed_population, seed_fit = np.random.SeedSequence([seed, n]).generate_state(2)
    X, phi = sknlme.datasets.make_population(
        post.model, n, dict(mean=TRUE_MEAN, var=TRUE_VAR), random_state=int(seed_population)
    )
    warm_s = warm_up(post, X, n_samples)
    pop = NLMEPopulationEstimator(
        FrozenEstimator(post),
        covariance="diag",
        random_effects=RANDOM_EFFECTS,
        likelihood="amortized",  # the paper's study: the network's likelihood alone
        n_samples=n_samples,
        n_starts=n_starts,
        random_state=int(seed_fit),
    )
    start = time.perf_counter()
    pop.fit(X)
    seconds = time.perf_counter() - start
    sd_names = [f"SD({p})" for p in RANDOM_EFFECTS]
    estimate = pd.concat(
        [
            pop.fixed_effects_[list(TRUE_MEAN)],
            pd.Series(pop.random_effects_[RANDOM_EFFECTS].to_numpy(), index=sd_names),
        ]
    )
    oracle = pd.concat(
        [
            phi[list(TRUE_MEAN)].mean(),
            pd.Series(phi[RANDOM_EFFECTS].std(ddof=1).to_numpy(), index=sd_names),
        ]
    )
    return estimate, oracle, warm_s, seconds, pop


def rmse(errors):
    """Root mean square of a vector of errors."""
    return float(np.sqrt(np.mean(np.square(errors))))


def plot(results, truth, path):
    """Absolute error of every quantity and the fit time, against N."""
    n = results["N"].to_numpy()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), width_ratios=[1.4, 1])
    ax = axes[0]
    for j, name in enumerate(truth.index):
        style = "-" if j < len(TRUE_MEAN) else "--"
        ax.plot(n, results[f"err {name}"], style, marker="o", ms=4, label=name)
    ax.plot(n, results["rmse"], "k-", lw=2.5, label="RMSE (all 10)")
    ax.plot(n, results["oracle rmse"], "k:", lw=2, label="oracle RMSE")
    ax.set(xscale="log", yscale="log", xlabel="cells N", ylabel="|estimate - truth|")
    ax.set_title("absolute error on the log scale (dashed: random-effect SDs)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax = axes[1]
    ax.plot(n, results["fit s"], "o-", label="whole fit")
    ax.plot(n, results["warm-up s"], "^-", label="draws before the fit (with compilation)")
    ax.plot(n, results["start s"], "s-", label="one optimiser start (median)")
    ax.set(xscale="log", yscale="log", xlabel="cells N", ylabel="wall seconds", title="time")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="examples-out/single_cell_scale", help="output folder")
    parser.add_argument(
        "--n", type=int, nargs="+", default=[50, 200, 1000], help="population sizes"
    )
    parser.add_argument("--n-starts", type=int, default=10, help="optimiser starts per fit")
    parser.add_argument("--random-state", type=int, default=0)
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    post = sknlme.datasets.pretrained("mrna-transfection")
    names = list(post.model.param_names)
    if names != list(TRUE_MEAN):
        raise ValueError(f"the shipped network's parameters {names} are not {list(TRUE_MEAN)}")
    truth = targets()
    print(f"shipped network {post.model.name!r}; {args.n_starts} starts per fit\n")

    estimates, rows = {}, []
    for n in sorted(set(args.n)):
        raw, oracle, warm_s, seconds, pop = fit_one(post, n, args.n_starts, args.random_state)
        est, swapped = swap_back(raw, truth)
        estimates[f"N={n}"] = est
        starts = pop.optimize_result_.optimize_result.list
        row = {
            "N": n,
            "warm-up s": warm_s,
            "fit s": seconds,
            "start s": float(np.median([r.time for r in starts])),
            "converged": pop.n_starts_converged_,
            "swapped": swapped,
            "rmse": rmse(est - truth),
            "oracle rmse": rmse(oracle - truth),
        }
        row |= {f"est {p}": est[p] for p in truth.index}
        row |= {f"err {p}": abs(est[p] - truth[p]) for p in truth.index}
        rows.append(row)
        print(
            f"N={n:>5}: fitted in {seconds:6.1f} s (warm-up draws {warm_s:.1f} s), "
            f"RMSE {row['rmse']:.3f} "
            f"(oracle {row['oracle rmse']:.3f}){', delta/gamma swapped back' if swapped else ''}"
        )
    results = pd.DataFrame(rows)

    table = pd.DataFrame({"truth": truth} | estimates)
    print("\nestimates (log-scale means, then random-effect SDs) next to the truth:")
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    cols = ["N", "warm-up s", "fit s", "start s", "converged", "swapped", "rmse", "oracle rmse"]
    print(f"\nseconds and errors per N ({args.n_starts} starts, one after another):")
    print("  warm-up: the fit's draws once before the fit (compiles the network for the sizes)")
    print("  fit: the whole fit (draws, starts, re-scoring, standard errors)")
    print("  start: median time of one optimiser start; converged: starts at the best value")
    timing = results[cols]
    print(timing.to_string(index=False, float_format=lambda v: f"{v:.3f}"))

    results.to_csv(out / "results.csv", index=False)
    plot(results, truth, out / "scale.png")
    print(f"\nwrote results.csv, scale.png to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
