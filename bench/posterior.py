"""Quality and speed of the pretrained posteriors.

Usage::

    python -m bench.posterior one-compartment-oral [--file PATH] [--n-val 1000]
    python -m bench.posterior mrna-transfection

Measures, and writes to ``bench/out/posterior_<name>.json`` (with figures):

* calibration on ``n_val`` held-out simulations: SBC rank ECDF error, coverage
  of central 50/90/95 % intervals, NRMSE, contraction (``diagnose``);
* agreement with an exact posterior for 20 simulated individuals (models with
  a likelihood): adaptive random-walk Metropolis on ``model.log_likelihood``
  plus the prior; ``|mean_npe - mean_mcmc| / sd_mcmc`` per parameter;
* sampling throughput: 10,000 individuals x 100 draws (after one warm-up).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402

from sknlme.posterior import AmortizedPosterior  # noqa: E402


def metropolis(model, X, init, n_iter=20_000, n_chains=8, seed=0):
    """Adaptive random-walk Metropolis, vectorised over individuals and chains.

    ``init`` (n, K, d) are starting draws (e.g. from the network); proposals
    are Gaussian with covariance ``2.38² / d`` times the running covariance of
    each individual's chains (adapted during the first half, then frozen).
    Returns the second half of all chains, shape (n, n_chains * n_iter // 2, d).
    """
    rng = np.random.default_rng(seed)
    n, _, d = init.shape
    phi = init[:, :n_chains].astype(float).copy()

    def logpost(p):
        return model.log_likelihood(p, X) + model.prior_logpdf(p)

    lp = logpost(phi)
    cov = np.array([np.cov(init[i].T) + 1e-6 * np.eye(d) for i in range(n)])
    scale = 2.38**2 / d
    kept, accepted = [], 0
    adapt_until = n_iter // 2
    for it in range(n_iter):
        chol = np.linalg.cholesky(scale * cov)
        prop = phi + np.einsum("nde,nce->ncd", chol, rng.standard_normal(phi.shape))
        lp_prop = logpost(prop)
        accept = np.log(rng.uniform(size=lp.shape)) < lp_prop - lp
        phi = np.where(accept[..., None], prop, phi)
        lp = np.where(accept, lp_prop, lp)
        if it < adapt_until:
            if it >= 500 and it % 250 == 0:
                recent = np.concatenate(kept[-2000:], axis=1) if kept else phi
                cov = np.array([np.cov(recent[i].T) + 1e-8 * np.eye(d) for i in range(n)])
            kept.append(phi.copy())
            if len(kept) > 2000:
                kept = kept[-2000:]
            if it == adapt_until - 1:
                kept = []
        else:
            accepted += accept.mean()
            kept.append(phi.copy())
    draws = np.concatenate(kept, axis=1)
    return draws, accepted / (n_iter - adapt_until)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--file", default=None, help="posterior file; the shipped one if omitted")
    parser.add_argument("--n-val", type=int, default=1000)
    parser.add_argument("--n-mcmc", type=int, default=20)
    parser.add_argument("--mcmc-iter", type=int, default=20_000)
    args = parser.parse_args(argv)

    if args.file:
        post = AmortizedPosterior.load(args.file)
    else:
        from sknlme.datasets._pretrained import pretrained

        post = pretrained(args.name)
    model = post.model
    out = Path("bench/out")
    out.mkdir(parents=True, exist_ok=True)
    report = {"name": args.name, "training_time_s": post.training_time_}

    X_val, phi_val = model.simulate(args.n_val, random_state=12345)
    draws = post.sample(X_val, 100, random_state=0)
    from sknlme.posterior import posterior_metrics

    table = posterior_metrics(draws, phi_val, np.diag(model.prior_cov), model.param_names)
    print(table.round(3).to_string(), flush=True)
    report["diagnostics"] = table.round(4).to_dict(orient="index")

    from sknlme.plotting import plot_calibration_ecdf, plot_loss, plot_recovery

    plot_recovery(draws[:300], phi_val.iloc[:300]).savefig(out / f"recovery_{args.name}.png")
    plot_calibration_ecdf(draws, phi_val).savefig(out / f"ecdf_{args.name}.png")
    plot_loss(post).savefig(out / f"loss_{args.name}.png")

    if model.has_likelihood and args.n_mcmc:
        X_m, phi_m = model.simulate(args.n_mcmc, random_state=777)
        npe = post.sample(X_m, 4000, random_state=1).astype(float)
        t0 = time.perf_counter()
        mcmc, acc = metropolis(model, X_m, npe, n_iter=args.mcmc_iter)
        z = np.abs(npe.mean(1) - mcmc.mean(1)) / mcmc.std(1)
        sd_ratio = npe.std(1) / mcmc.std(1)
        report["mcmc"] = {
            "n_individuals": args.n_mcmc,
            "acceptance": float(acc),
            "seconds": time.perf_counter() - t0,
            "median_abs_mean_diff_in_sd": float(np.median(z)),
            "median_abs_mean_diff_in_sd_per_param": dict(
                zip(model.param_names, np.median(z, 0).round(3).tolist(), strict=True)
            ),
            "max_abs_mean_diff_in_sd": float(z.max()),
            "median_sd_ratio_npe_over_mcmc": dict(
                zip(model.param_names, np.median(sd_ratio, 0).round(3).tolist(), strict=True)
            ),
        }
        print(json.dumps(report["mcmc"], indent=1), flush=True)

    X_big, _ = model.simulate(10_000, random_state=5)
    post.sample(X_big.iloc[:2000], 100, random_state=0)  # compile the chunk shape
    t0, c0 = time.perf_counter(), time.process_time()
    big = post.sample(X_big, 100, random_state=0)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    post.log_prob(X_big.iloc[:1000], big[:1000])
    report["throughput"] = {
        "sample_10000x100_s": seconds,
        # CPU time of this process over all threads: <= 2 x wall time on 2 free cores
        "sample_10000x100_cpu_s": cpu_seconds,
        "log_prob_1000x100_s": time.perf_counter() - t0,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    print(json.dumps(report["throughput"], indent=1), flush=True)
    (out / f"posterior_{args.name}.json").write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
