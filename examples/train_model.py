"""Train a network for a model of your own, check it, save it, and fit a population with it.

The model is a logistic growth curve written as a plain vectorised function
and turned into an sknlme model with :class:`sknlme.models.FunctionModel`::

    y(t) = K / (1 + (K / y0 - 1) exp(-r t)),    observed with proportional error b,

with parameters ``log_K`` (final size), ``log_r`` (growth rate per day),
``log_y0`` (initial size) and ``log_b`` (the proportional error), observed
every two days from day 0 to day 28. The script

1. simulates training data from the model's training prior
   (``model.simulate``) and trains an :class:`~sknlme.posterior.AmortizedPosterior`;
2. diagnoses it on held-out simulations (``post.diagnose``: recovery, posterior
   contraction and calibration per parameter) and draws the training loss,
   the recovery of the true parameters and the rank-ECDF calibration;
3. saves the network to one file, loads it back and checks that the loaded
   network gives identical draws for the same ``random_state``;
4. simulates a population with known population parameters
   (:func:`sknlme.datasets.make_population`) and fits it with
   :class:`~sknlme.population.NLMEPopulationEstimator` around the loaded
   network (wrapped in :class:`~sklearn.frozen.FrozenEstimator`, so it is
   never retrained), printing the estimates next to the truth. The default
   ``--likelihood importance`` integrates the model's exact likelihood over
   the random effects, so that parameters the network pins down less well
   (in the diagnostics, typically the error level ``log_b``) are still
   estimated from the data themselves; ``amortized`` is faster and rests on
   the network alone.

A saved posterior records its model by class (import path) and constructor
arguments. A bare ``FunctionModel`` holds a Python function, which such a file
cannot store: it is then saved by its parameter names and prior only, and
loaded with ``AmortizedPosterior.load(path, model=model)``. Here the model is a
small ``FunctionModel`` subclass whose constructor takes only the observation
times, so the file rebuilds it by itself; the class must be importable
wherever the file is loaded (in a project, put it in a module of its own).

Outputs in ``--out``: ``loss.png``, ``recovery.png``, ``calibration.png``,
``diagnostics.csv``, ``logistic-growth.sknlme`` (the network),
``estimates.csv`` and ``population_fits.png`` (data and individual predictions
of a few individuals). With the defaults the script takes two to three
minutes on two CPU cores, most of it training; ``--quick`` trains a tiny
network on 2,000 simulations for two epochs (seconds; useless for inference,
but every step runs).

Run::

    python examples/train_model.py [--out DIR] [--n-simulations 20000] [--epochs 40]
                                   [--summary-network deepset] [--n-individuals 60]
                                   [--n-starts 10] [--likelihood importance]
                                   [--random-state 0]
    python examples/train_model.py --quick
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

from sknlme.datasets import make_population  # noqa: E402
from sknlme.models import FunctionModel  # noqa: E402
from sknlme.plotting import (  # noqa: E402
    plot_calibration_ecdf,
    plot_individual_fits,
    plot_loss,
    plot_recovery,
)
from sknlme.population import NLMEPopulationEstimator  # noqa: E402
from sknlme.posterior import AmortizedPosterior  # noqa: E402

DAYS = np.arange(0.0, 29.0, 2.0)  # observation times of the training designs (days)
STRUCTURAL = ["log_K", "log_r", "log_y0"]
# training prior (log scale): K about 90, r about 0.22 per day, y0 about 4.5, b about 8 %
PRIOR_MEAN = [4.5, -1.5, 1.5, -2.5]
PRIOR_VAR = [0.3, 0.3, 0.3, 0.3]
# the population to recover (log scale); the error level has no random effect
TRUE_MEAN = {"log_K": 4.4, "log_r": -1.4, "log_y0": 1.6, "log_b": -2.6}
TRUE_SD = {"log_K": 0.2, "log_r": 0.25, "log_y0": 0.3, "log_b": 0.0}


def logistic(phi, t):
    """Logistic growth curves; ``phi`` (n, 3) on the log scale, ``t`` (n, T) in days.

    Written as ``1 / y = (1 - exp(-r t)) / K + exp(-r t) / y0``, a sum of two
    non-negative terms, so that parameters far from the data (which the
    optimiser and the importance sampler may try) give finite predictions.
    """
    K, r, y0 = (np.exp(phi[:, j : j + 1]) for j in range(3))
    grown = -np.expm1(-r * t)  # 1 - exp(-r t), accurate near t = 0
    return 1.0 / (grown / K + (1.0 - grown) / y0)


class LogisticGrowth(FunctionModel):
    """:func:`logistic` with proportional error, observed at ``times`` (days)."""

    def __init__(self, times=DAYS):
        super().__init__(
            logistic,
            STRUCTURAL,
            prior_mean=PRIOR_MEAN,
            prior_cov=PRIOR_VAR,
            times=times,
            error="proportional",
            output_names=("size",),
            name="logistic-growth",
        )


def train(model, args):
    """Simulate training data and train the network; returns the fitted posterior."""
    start = time.perf_counter()
    X_sim, phi_sim = model.simulate(args.n_simulations, random_state=args.random_state)
    sim_s = time.perf_counter() - start
    post = AmortizedPosterior(
        model,
        summary_network=args.summary_network,
        hidden_units=args.hidden_units,
        flow_depth=args.flow_depth,
        epochs=args.epochs,
        batch_size=args.batch_size,
        random_state=args.random_state,
        verbose=args.verbose,
    )
    post.fit(X_sim, phi_sim)
    n_epochs = len(post.history_["loss"])
    print(
        f"simulated {args.n_simulations} individuals in {sim_s:.1f} s; trained "
        f"{n_epochs} epochs in {post.training_time_:.1f} s "
        f"(final validation loss {post.history_['val_loss'][-1]:.3f})"
    )
    return post


def diagnose(post, X_val, phi_val, out, random_state):
    """Per-parameter diagnostics on held-out simulations and the three figures."""
    metrics = post.diagnose(X_val, phi_val, n_samples=100, random_state=random_state)
    print(f"\nposterior diagnostics on {len(X_val)} held-out simulations:")
    print(metrics.to_string(float_format=lambda v: f"{v:.3f}"))
    print(
        "(nrmse: error of posterior means in prior SDs, 0 is perfect; contraction: 1 - "
        "posterior/prior variance; coverage_<level>: should equal the level)"
    )
    metrics.to_csv(out / "diagnostics.csv")
    draws = post.sample(X_val, 100, random_state=random_state)
    for name, fig in [
        ("loss.png", plot_loss(post)),
        ("recovery.png", plot_recovery(draws, phi_val)),
        ("calibration.png", plot_calibration_ecdf(draws, phi_val)),
    ]:
        fig.savefig(out / name, dpi=110)
        plt.close(fig)


def save_and_reload(post, path, X_check, random_state):
    """Save, load back, and compare draws; returns (loaded posterior, identical?)."""
    post.save(path)
    loaded = AmortizedPosterior.load(path)
    before = post.sample(X_check, 50, random_state=random_state)
    after = loaded.sample(X_check, 50, random_state=random_state)
    same = bool(np.array_equal(before, after))
    size = path.stat().st_size / 1024
    print(
        f"\nsaved to {path} ({size:.0f} kB) and loaded back: draws for {len(X_check)} "
        f"individuals {'identical' if same else 'DIFFERENT'} for the same random_state"
    )
    return loaded, same


def fit_population(post, args):
    """Simulate a population with known parameters and fit it; returns (X, estimator, table)."""
    X, phi = make_population(
        post.model,
        args.n_individuals,
        dict(mean=TRUE_MEAN, sd=TRUE_SD),
        random_state=args.random_state + 2,
    )
    pop = NLMEPopulationEstimator(
        FrozenEstimator(post),
        random_effects=STRUCTURAL,
        likelihood=args.likelihood,
        n_starts=args.n_starts,
        random_state=args.random_state,
    )
    start = time.perf_counter()
    pop.fit(X)
    seconds = time.perf_counter() - start
    print(
        f"\npopulation of {len(X)} individuals fitted in {seconds:.1f} s "
        f"({args.likelihood} likelihood, {pop.n_starts_converged_} of {args.n_starts} starts "
        "reached the best value)"
    )
    rows = {p: (pop.fixed_effects_[p], TRUE_MEAN[p], phi[p].mean()) for p in TRUE_MEAN}
    rows |= {
        f"SD({p})": (pop.random_effects_[p], TRUE_SD[p], phi[p].std(ddof=1)) for p in STRUCTURAL
    }
    table = pd.DataFrame(rows, index=["estimate", "truth", "sample of true phi"]).T
    table["error"] = table["estimate"] - table["truth"]
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    print("(sample of true phi: moments of the simulated individuals' own parameters)")
    return X, pop, table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="examples-out/train_model", help="output folder")
    parser.add_argument("--quick", action="store_true", help="tiny network, seconds to train")
    parser.add_argument("--n-simulations", type=int, default=None, help="training simulations")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (at most)")
    parser.add_argument("--n-individuals", type=int, default=None, help="population size")
    parser.add_argument("--n-starts", type=int, default=None, help="optimiser starts")
    parser.add_argument(
        "--likelihood",
        choices=["importance", "amortized"],
        default="importance",
        help="population likelihood (amortized: faster, rests on the network alone)",
    )
    parser.add_argument(
        "--summary-network",
        choices=["deepset", "conv", "set_transformer", "time_series"],
        default="deepset",
        help="summary network of the posterior (see AmortizedPosterior)",
    )
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=0, help="Keras verbosity (0, 1 or 2)")
    args = parser.parse_args(argv)
    # defaults: a usable network in a few minutes on 2 cores; --quick: every step in seconds
    quick = dict(
        n_simulations=2000,
        epochs=2,
        n_individuals=30,
        n_starts=2,
        n_val=200,
        hidden_units=(16, 16),
        flow_depth=2,
        batch_size=64,
    )
    full = dict(
        n_simulations=20_000,
        epochs=40,
        n_individuals=60,
        n_starts=10,
        n_val=1000,
        hidden_units=(64, 64),
        flow_depth=5,
        batch_size=128,
    )
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    model = LogisticGrowth()
    print(f"model {model.name}: parameters {list(model.param_names)}, {DAYS.size} time points")
    post = train(model, args)

    X_val, phi_val = model.simulate(args.n_val, random_state=args.random_state + 1)
    diagnose(post, X_val, phi_val, out, args.random_state)

    post, same = save_and_reload(
        post, out / "logistic-growth.sknlme", X_val.iloc[:50], args.random_state
    )
    if not same:
        print("the loaded network does not reproduce the saved one's draws")
        return 1

    X, pop, table = fit_population(post, args)
    table.to_csv(out / "estimates.csv")
    fig = plot_individual_fits(post.model, X, pop.predict(X), max_individuals=9)
    fig.savefig(out / "population_fits.png", dpi=110)
    plt.close(fig)
    print(
        f"\nwrote loss.png, recovery.png, calibration.png, diagnostics.csv, "
        f"logistic-growth.sknlme, estimates.csv, population_fits.png to {out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
