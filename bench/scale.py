"""Single-cell scale: population recovery and optimiser time from 50 to 10,000 cells.

Run ``python -m bench.scale`` (about 5 minutes on 2 cores) or ``--quick``
(N in {50, 500}, one replicate, 4 starts; about a minute).

The paper's synthetic study (Arruda et al., 2024): cells of the simple mRNA
transfection model with log-normal parameters whose natural-scale means
(0.8, 0.03, 502, 0.9, 8, sqrt(0.001)) and variances (1, 1, 1000, 0.1, 0, 0)
give, on the log scale, the means and random-effect variances in ``TRUE_MEAN``
and ``TRUE_VAR`` (offset and sigma have no random effect). For every
population size ``N`` and replicate (its own seed) it simulates a population
(:func:`sknlme.datasets.make_population`) and fits it with the shipped network
(``pretrained("mrna-transfection")`` in a :class:`~sklearn.frozen.FrozenEstimator`)
and ``NLMEPopulationEstimator(random_effects=<first four>, covariance="diag",
n_samples=100)``, amortized likelihood, starts run serially. It reports

- the absolute error (log scale) of the six fixed effects and the four
  random-effect SDs against the truth, their RMSE, and the "oracle" RMSE of
  the sample moments of the true individual parameters (what an estimator
  that saw every cell's parameters would achieve at that ``N``). ``delta`` and
  ``gamma`` are exchangeable in this model (the data identify them only up to
  a swap), so an estimate closer to the swapped truth is swapped back first
  (column ``swapped``);
- the median wall time of one optimiser start (pyPESTO's per-start times),
  the time of the posterior draws of the fit (and of the ten times larger
  re-scoring draws) and the total fit time;
- the same objective optimised from the same start with finite-difference
  gradients (scipy's 2-point differences, the original approach) at one ``N``
  (the smallest by default), as an in-run baseline. The paper's 229 s per start
  at N = 10,000, M = 100 (finite differences, another machine) is printed as
  a reference only;
- a diagnosis of the network on the largest population: per parameter, the
  median over cells of (posterior mean - true value), the median posterior
  SD, the coverage of central 95 % intervals, and the gap between the
  log-likelihood at the true parameters and at the best of the draws. The
  amortized likelihood uses the network's posteriors as they are, so a bias
  here becomes a bias of the population estimate that no ``N`` removes.

Outputs in ``--out`` (default ``bench/out``): ``scale.csv`` (one row per fit),
``scale_summary.csv`` (means over replicates) and ``scale.png`` (errors and
times against ``N``).
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.frozen import FrozenEstimator  # noqa: E402

from bench.population import Clock, run_start  # noqa: E402
from sknlme.datasets import make_population  # noqa: E402
from sknlme.population import NLMEPopulationEstimator  # noqa: E402
from sknlme.posterior._runtime import CHUNK_ROWS  # noqa: E402

NAMES = ["log_delta", "log_gamma", "log_k_m0_scale", "log_t0", "log_offset", "log_sigma"]
TRUE_MEAN = np.array([-0.694, -7.014, 6.217, -0.164, 2.079, -3.454])
TRUE_VAR = np.array([0.941, 7.014, 0.00396, 0.116, 0.0, 0.0])
RANDOM_EFFECTS = NAMES[:4]
TARGETS = NAMES + [f"sd({p})" for p in RANDOM_EFFECTS]
SHORT = dict(zip(TARGETS, ["delta", "gamma", "kms", "t0", "offset", "sigma", "sd_delta",
                           "sd_gamma", "sd_kms", "sd_t0"], strict=True))  # fmt: skip
PAPER_START_S = 229.0  # DESIGN.md section 7: N = 10,000, M = 100, another machine


def truth():
    """True population values of the ten targets (fixed effects, then SDs)."""
    return pd.Series(np.r_[TRUE_MEAN, np.sqrt(TRUE_VAR[:4])], index=TARGETS)


class TimedPosterior(FrozenEstimator):
    """A FrozenEstimator that records the wall time of every ``sample`` call."""

    def sample(self, X, n_samples, random_state=None):
        t0 = time.perf_counter()
        out = self.estimator.sample(X, n_samples, random_state=random_state)
        self.__dict__.setdefault("seconds", []).append(time.perf_counter() - t0)
        return out


def align_swap(values):
    """Swap the delta/gamma entries (means and SDs) when the swap is closer to the truth."""
    v, t = values.copy(), truth()
    pairs = [("log_delta", "log_gamma"), ("sd(log_delta)", "sd(log_gamma)")]
    direct = sum(abs(v[a] - t[a]) + abs(v[b] - t[b]) for a, b in pairs)
    swapped = sum(abs(v[b] - t[a]) + abs(v[a] - t[b]) for a, b in pairs)
    if swapped < direct:
        for a, b in pairs:
            v[a], v[b] = values[b], values[a]
    return v, bool(swapped < direct)


def _rmse(err):
    return float(np.sqrt(np.mean(np.square(err))))


def fit_one(post, n, rep, seed=0, n_starts=10, n_samples=100, **estimator_kw):
    """Simulate one population and fit it; returns (row dict, estimator, X, phi)."""
    seed_pop, seed_fit = np.random.SeedSequence([seed, rep, n]).generate_state(2)
    clock = Clock()
    X, phi = make_population(
        post.model, n, dict(mean=TRUE_MEAN, var=TRUE_VAR), random_state=int(seed_pop)
    )
    sim_s = clock.read()[0]
    clock = Clock()
    for k in (n_samples, 10 * n_samples):  # compile the sampler for this N's chunk shapes
        post.sample(X.iloc[: min(n, CHUNK_ROWS // k)], k, random_state=0)
    compile_s = clock.read()[0]
    timed = TimedPosterior(post)
    pop = NLMEPopulationEstimator(
        timed, covariance="diag", random_effects=RANDOM_EFFECTS, n_samples=n_samples,
        n_starts=n_starts, random_state=int(seed_fit),
        **({"likelihood": "amortized"} | estimator_kw),  # the paper's study: no exact likelihood
    )  # fmt: skip
    clock = Clock()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pop.fit(X)
    fit_s = clock.read()[0]
    est = pd.Series(np.r_[pop.fixed_effects_[NAMES], pop.random_effects_[RANDOM_EFFECTS]],
                    index=TARGETS)  # fmt: skip
    est, swapped = align_swap(est)
    sample = pd.Series(np.r_[phi[NAMES].mean(), phi[RANDOM_EFFECTS].std(ddof=1)], index=TARGETS)
    t = truth()
    starts = pop.optimize_result_.optimize_result.list
    times = np.array([r.time for r in starts])
    row = dict(n=n, rep=rep, seed_population=int(seed_pop), seed_fit=int(seed_fit),
               swapped=swapped)  # fmt: skip
    row |= {f"est_{p}": est[p] for p in TARGETS}
    row |= {f"err_{p}": abs(est[p] - t[p]) for p in TARGETS}
    row |= {f"sample_{p}": sample[p] for p in TARGETS}
    row |= dict(
        rmse=_rmse(est - t),
        rmse_fixed=_rmse((est - t)[NAMES]),
        rmse_sd=_rmse((est - t)[TARGETS[6:]]),
        rmse_vs_sample=_rmse(est - sample),
        rmse_oracle=_rmse(sample - t),
        start_s=float(np.median(times)),
        start_s_min=float(times.min()),
        start_s_max=float(times.max()),
        n_fval=float(np.median([r.n_fval for r in starts])),
        n_starts=len(starts),
        n_converged=pop.n_starts_converged_,
        n_failed=pop.n_starts_failed_,
        optimise_s=float(times.sum()),
        draw_s=timed.seconds[0],
        rescore_draw_s=float(sum(timed.seconds[1:])),
        simulate_s=sim_s,
        compile_s=compile_s,
        fit_s=fit_s,
        loglik=pop.loglik_,
        ess_median=float(pop.ess_.median()),
        ess_below_5pct=float(np.mean(pop.ess_ < 0.05 * 10 * n_samples)),
        warnings=" | ".join(sorted({str(w.message)[:90] for w in caught})),
    )
    return row, pop, X, phi


def fd_baseline(pop, cap=120.0):
    """One start with analytic and with finite-difference gradients from the same point.

    Runs scipy's L-BFGS-B on ``pop.objective_`` (the fit draws) from the
    first start point of the fit; returns wall seconds, evaluations and the
    ratio. An FD start past ``cap`` seconds is stopped and its time
    extrapolated to the analytic start's iterations (``fd_capped``).
    """
    obj = pop.objective_
    x0 = next(r.x0 for r in pop.optimize_result_.optimize_result.list if int(r.id) == 0)
    secs, evals, iters, res, _ = run_start(obj, np.asarray(x0, dtype=float))
    fd, fd_evals, fd_iters, fd_res, capped = run_start(obj, x0, analytic=False, cap=cap)
    if capped:
        fd = fd / max(fd_iters, 1) * iters
    return dict(
        n=obj.n, analytic_s=float(secs[0]), analytic_evals=evals, fd_s=float(fd[0]),
        fd_evals=fd_evals, fd_capped=capped, ratio=float(fd[0] / secs[0]),
        analytic_f=float(res.fun), fd_f=np.nan if fd_res is None else float(fd_res.fun),
    )  # fmt: skip


def network_diagnosis(pop, X, phi, n_loglik=500):
    """The fit draws against the true phi: per-parameter bias, SD, 95 % coverage; loglik gap.

    ``delta`` and ``gamma`` enter as the swap-invariant pair ``max`` and
    ``min`` of the two (posterior means of the raw pair average the two modes).
    The gap is the median over the first ``n_loglik`` cells of the
    log-likelihood at the true phi minus the best log-likelihood of the draws.
    """
    draws = np.asarray(pop.objective_.samples, dtype=float)  # (n, K, d)
    true = phi[NAMES].to_numpy()
    m = min(n_loglik, len(X))
    model = pop.posterior.model
    ll_true = model.log_likelihood(true[:m, None, :], X.iloc[:m])[:, 0]
    ll_best = model.log_likelihood(draws[:m], X.iloc[:m]).max(axis=1)

    def invariant(a):
        a = a.copy()
        a[..., 0], a[..., 1] = a[..., :2].max(-1), a[..., :2].min(-1)
        return a

    draws, true = invariant(draws), invariant(true)
    lo, hi = np.quantile(draws, [0.025, 0.975], axis=1)
    table = pd.DataFrame(
        {
            "bias": np.median(draws.mean(axis=1) - true, axis=0),
            "post_sd": np.median(draws.std(axis=1), axis=0),
            "coverage95": np.mean((true >= lo) & (true <= hi), axis=0),
        },
        index=["max(delta,gamma)", "min(delta,gamma)"] + NAMES[2:],
    )
    return table, float(np.median(ll_true - ll_best))


def run_scale(post, sizes, reps, n_starts=10, seed=0, fd_n=None, fd_cap=120.0, log=print,
              **estimator_kw):  # fmt: skip
    """Fit every (N, replicate); returns (per-fit table, FD baseline dict, diagnosis).

    ``reps`` is an int or a callable ``N -> replicates``. The FD baseline runs
    on the first replicate at ``fd_n`` (smallest N when None; skipped when
    ``fd_n`` is not in ``sizes``); the diagnosis on the first replicate at the
    largest N.
    """
    sizes = sorted(int(n) for n in sizes)
    fd_n = sizes[0] if fd_n is None else int(fd_n)
    rows, fd, diagnosis = [], None, None
    for n in sizes:
        for rep in range(reps(n) if callable(reps) else int(reps)):
            row, pop, X, phi = fit_one(post, n, rep, seed, n_starts, **estimator_kw)
            rows.append(row)
            log(f"N={n:>6} rep {rep}: rmse {row['rmse']:.3f} (oracle {row['rmse_oracle']:.3f}), "
                f"start {row['start_s']:.2f} s, fit {row['fit_s']:.1f} s")  # fmt: skip
            if rep == 0 and n == fd_n:
                fd = fd_baseline(pop, fd_cap)
            if rep == 0 and n == sizes[-1]:
                diagnosis = network_diagnosis(pop, X, phi)
            del pop, X, phi
    return pd.DataFrame(rows), fd, diagnosis


def summarise(table):
    """Means over replicates per N (errors, RMSEs, times) and the replicate count."""
    cols = [f"err_{p}" for p in TARGETS] + [
        "rmse", "rmse_fixed", "rmse_sd", "rmse_vs_sample", "rmse_oracle", "start_s", "n_fval",
        "compile_s", "draw_s", "rescore_draw_s", "fit_s", "ess_median", "ess_below_5pct",
    ]  # fmt: skip
    out = table.groupby("n")[cols].mean()
    out.insert(0, "reps", table.groupby("n").size())
    return out


def trend(table, summary):
    """Per target: error at the smallest and largest N, their ratio, monotone, signed bias."""
    t = truth()
    n_min, n_max = summary.index.min(), summary.index.max()
    rows = {}
    for p in [*TARGETS, "rmse"]:
        col = p if p == "rmse" else f"err_{p}"
        e = summary[col].to_numpy()
        bias = np.nan if p == "rmse" else table.loc[table.n == n_max, f"est_{p}"].mean() - t[p]
        rows[p] = dict(
            err_min_n=e[0], err_max_n=e[-1], ratio=e[-1] / e[0] if e[0] > 0 else np.nan,
            monotone=bool(np.all(np.diff(e) <= 0)), bias_max_n=bias,
        )  # fmt: skip
    out = pd.DataFrame(rows).T
    out.attrs["n_range"] = (int(n_min), int(n_max))
    return out


def plot_scale(table, path):
    """Errors (log x) per target and times per N; saved to ``path``."""
    import matplotlib.pyplot as plt

    summary = summarise(table)
    n = summary.index.to_numpy()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    for ax, group, title in [
        (axes[0], NAMES, "fixed effects"),
        (axes[1], TARGETS[6:], "random-effect SDs"),
    ]:
        for p in group:
            ax.plot(n, summary[f"err_{p}"], marker="o", label=SHORT[p])
        ax.plot(n, summary["rmse"], "k--", lw=2, label="RMSE (all 10)")
        ax.plot(n, summary["rmse_oracle"], "k:", lw=2, label="oracle RMSE")
        ax.set(xscale="log", yscale="log", xlabel="cells N",
               ylabel="|estimate - truth| (parameters on log scale)",
               title=f"error: {title}")  # fmt: skip
        ax.legend(fontsize=8)
    ax = axes[2]
    for col, label in [("start_s", "median time per start"), ("draw_s", "posterior draws (M=100)"),
                       ("fit_s", "total fit")]:  # fmt: skip
        ax.plot(n, summary[col], marker="o", label=label)
    ax.axhline(PAPER_START_S, color="grey", ls="--", label="paper: 229 s/start at 10,000 (ref.)")
    ax.set(xscale="log", yscale="log", xlabel="cells N", ylabel="wall seconds", title="time")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(table, fd, diagnosis, print=print):  # noqa: A002 - injectable for tests
    """Print the tables, the baseline, the trend check and the diagnosis."""
    summary = summarise(table)
    errs = summary[[f"err_{p}" for p in TARGETS] + ["rmse", "rmse_oracle"]]
    errs.columns = [SHORT[p] for p in TARGETS] + ["RMSE", "oracle"]
    print("\nabsolute error vs the truth (log scale), mean over replicates")
    print(errs.to_string(float_format=lambda v: f"{v:.3f}"))
    times = summary[["reps", "start_s", "n_fval", "compile_s", "draw_s", "rescore_draw_s",
                     "fit_s", "ess_median", "ess_below_5pct"]]  # fmt: skip
    print("\nwall seconds (mean over replicates): start = median over starts; compile = first")
    print("sampler call per chunk shape (outside the fit); draws at M=100; rescore = 10x draws;")
    print("fit includes both draws; ESS on the re-scoring draws (of 1,000)")
    print(times.to_string(float_format=lambda v: f"{v:.2f}"))
    if table["swapped"].any():
        print(f"delta/gamma swapped back in {int(table['swapped'].sum())} of {len(table)} fits")
    if fd is not None:
        how = ", extrapolated" if fd["fd_capped"] else ""
        print(f"\nbaseline at N={fd['n']}: one start from the same point, analytic gradient "
              f"{fd['analytic_s']:.2f} s ({fd['analytic_evals']} evals) vs finite differences "
              f"{fd['fd_s']:.2f} s ({fd['fd_evals']} evals{how}): {fd['ratio']:.1f}x; "
              f"end values {fd['analytic_f']:.3f} / {fd['fd_f']:.3f}")  # fmt: skip
    big = summary.index.max()
    print(f"reference only (another machine, FD gradients): paper {PAPER_START_S:.0f} s per start "
          f"at N=10,000, M=100; here {summary.loc[big, 'start_s']:.2f} s at N={big}")  # fmt: skip
    tr = trend(table, summary)
    lo, hi = tr.attrs["n_range"]
    ok = tr.loc["rmse", "err_max_n"] <= tr.loc["rmse", "err_min_n"]
    print(f"\nrecovery must not degrade with N: RMSE at N={hi} {tr.loc['rmse', 'err_max_n']:.3f} "
          f"{'<=' if ok else '>'} RMSE at N={lo} {tr.loc['rmse', 'err_min_n']:.3f}: "
          f"{'PASS' if ok else 'FAIL'}")  # fmt: skip
    print(tr.to_string(float_format=lambda v: f"{v:.3f}"))
    stuck = [SHORT[p] for p in TARGETS if not tr.loc[p, "ratio"] < 0.5]
    if stuck:
        print(f"error at N={hi} not below half the error at N={lo} (bias, not noise): "
              f"{', '.join(stuck)}")  # fmt: skip
    if diagnosis is not None:
        table_d, gap = diagnosis
        print(
            f"\nnetwork on the N={big} population (fit draws, M=100): bias = median over cells "
            "of (posterior mean - true phi); coverage of central 95 % intervals"
        )
        print(table_d.to_string(float_format=lambda v: f"{v:.3f}"))
        print(f"median log-likelihood gap, true phi minus best of the draws: {gap:.1f}")
    return summary, tr


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="N 50 and 500, 1 rep, 4 starts")
    parser.add_argument("--n", type=int, nargs="+", default=None)
    parser.add_argument("--reps", type=int, default=None, help="replicates for N <= 5,000")
    parser.add_argument("--reps-large", type=int, default=2, help="replicates for N > 5,000")
    parser.add_argument("--starts", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fd-n", type=int, default=None, help="N of the FD baseline")
    parser.add_argument("--fd-cap", type=float, default=None)
    parser.add_argument("--variance-floor", type=float, default=1e-3)
    parser.add_argument("--out", default="bench/out")
    args = parser.parse_args(argv)
    sizes = args.n or ([50, 500] if args.quick else [50, 500, 5000, 10000])
    reps = args.reps or (1 if args.quick else 3)
    starts = args.starts or (4 if args.quick else 10)
    fd_cap = args.fd_cap or (20.0 if args.quick else 120.0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from sknlme.datasets import pretrained

    clock = Clock()
    post = pretrained("mrna-transfection")
    print(f"network loaded in {clock.read()[0]:.1f} s; cpus {os.cpu_count()}, load average "
          f"{os.getloadavg()[0]:.1f}; {starts} starts per fit, serial; "
          f"variance_floor {args.variance_floor}")  # fmt: skip
    table, fd, diagnosis = run_scale(
        post, sizes, lambda n: reps if n <= 5000 else min(reps, args.reps_large), starts,
        args.seed, args.fd_n, fd_cap, variance_floor=args.variance_floor,
    )  # fmt: skip
    summary, _ = report(table, fd, diagnosis)
    table.to_csv(out / "scale.csv", index=False)
    summary.to_csv(out / "scale_summary.csv")
    plot_scale(table, out / "scale.png")
    print(f"\nwrote {out / 'scale.csv'}, {out / 'scale_summary.csv'}, {out / 'scale.png'} "
          f"(total {clock.read()[0]:.0f} s)")  # fmt: skip
    return table, fd, diagnosis


if __name__ == "__main__":
    main()
