"""A 100-subject study with repeated doses and BLQ, fitted with a shipped broad network.

Run ``python -m bench.broad_fit`` (``--n 100``, ``--model two-compartment-iv``).

The study is simulated from the model's broad designs
(:meth:`~sknlme.models.LinearCompartmental.sample_design`: 1-20 doses, steady
state, boluses and infusions, 1-30 samples), with 20 % of the observations
below an LLOQ (M3 in the importance likelihood), and fitted with the default
settings of :class:`~sknlme.population.NLMEPopulationEstimator` on the shipped
network, as ``sknlme fit study.csv --model two-compartment-iv`` does. It prints
the fit time, the time of its phases (cProfile, cumulative, the functions of
``sknlme.population`` and ``sknlme.posterior`` above 2 % of the time), how many
individuals fell back to Laplace proposals and why, and the estimates beside
the truth. Issue #12 asks for seconds, not a training run.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import time
import warnings

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.frozen import FrozenEstimator  # noqa: E402

from sknlme.data import from_long, to_long  # noqa: E402
from sknlme.datasets import make_population, pretrained  # noqa: E402
from sknlme.population import NLMEPopulationEstimator  # noqa: E402

TRUTH = {
    "two-compartment-iv": dict(
        mean=dict(log_CL=np.log(5), log_V1=np.log(50), log_Q=np.log(5), log_V2=np.log(100),
                  log_sigma=np.log(0.1)),
        sd=dict(log_CL=0.3, log_V1=0.25, log_Q=0.0, log_V2=0.0, log_sigma=0.0),
    ),
    "one-compartment-iv": dict(
        mean=dict(log_CL=np.log(5), log_V1=np.log(50), log_sigma=np.log(0.1)),
        sd=dict(log_CL=0.3, log_V1=0.25, log_sigma=0.0),
    ),
    "one-compartment-oral-trans4": dict(
        mean=dict(log_CL=np.log(5), log_V1=np.log(50), log_ka=np.log(1.0),
                  log_sigma=np.log(0.1)),
        sd=dict(log_CL=0.3, log_V1=0.25, log_ka=0.3, log_sigma=0.0),
    ),
}  # fmt: skip


def study(post, truth, n, seed):
    """The simulated study as a NONMEM long table with an LLOQ column (20 % BLQ)."""
    X, _ = make_population(post.model, n, truth, random_state=seed)
    long = to_long(X)
    obs = long["EVID"] == 0
    long["LLOQ"] = float(np.nanquantile(long.loc[obs, "DV"], 0.2))
    return long


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="two-compartment-iv", choices=sorted(TRUTH))
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument(
        "--all-random",
        action="store_true",
        help="between-subject SD 0.2 on every structural parameter and the estimator's "
        "default random effects (all of them), as `sknlme fit` does",
    )
    args = parser.parse_args(argv)
    post = pretrained(args.model)
    truth = TRUTH[args.model]
    if args.all_random:
        sd = {p: (v if v > 0 or p == "log_sigma" else 0.2) for p, v in truth["sd"].items()}
        truth = dict(mean=truth["mean"], sd=sd)
    long = study(post, truth, args.n, args.seed)
    X = from_long(long)
    random_effects = [p for p, sd in truth["sd"].items() if sd > 0]
    profiler = cProfile.Profile()
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        profiler.enable()
        pop = NLMEPopulationEstimator(
            FrozenEstimator(post), random_effects=random_effects, random_state=0
        ).fit(X)
        profiler.disable()
    seconds = time.perf_counter() - start
    blq = float(long.loc[long["EVID"] == 0, "DV"].lt(long["LLOQ"]).mean())
    print(f"{args.model}: {args.n} subjects, {blq:.0%} BLQ, fit {seconds:.1f} s "
          f"({pop.likelihood_} likelihood), {len(caught)} warnings")  # fmt: skip
    reason = pop.fallback_["reason"]
    kind = reason.where(~reason.str.startswith("effective sample size"), "low ESS")
    print(f"fallbacks: {len(pop.fallback_)}", kind.value_counts().to_dict())
    table = pop.parameter_table().set_index("parameter")
    rows = list(truth["mean"]) + [f"SD({p})" for p in random_effects]
    expected = {**truth["mean"], **{f"SD({p})": truth["sd"][p] for p in random_effects}}
    out = pd.DataFrame({"truth": pd.Series(expected)[rows], "estimate": table.loc[rows, "estimate"],
                        "se": table.loc[rows, "se"]})  # fmt: skip
    out["z"] = (out["estimate"] - out["truth"]) / out["se"]
    print(out.round(3))
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream).sort_stats("cumulative")
    stats.print_stats(r"sknlme/(population|posterior)/", 25)
    print("\n".join(stream.getvalue().splitlines()[-32:]))
    return seconds


if __name__ == "__main__":
    main()
