"""End to end against the peers: sknlme, R nlme and NumPyro on the same simulated studies.

Run ``python -m bench.peers`` (N in {100, 1000, 10000}; ``--n`` to choose,
``--large`` adds 100,000) or ``--quick`` (N = 100, one-compartment only).

For every ``N`` a study is simulated (:func:`sknlme.datasets.make_population`
on :class:`~sknlme.models.OneCompartmentOral`'s theophylline-like designs:
one oral dose, 11 samples, 10 for 30 % of individuals) with theophylline-like
population values (``ORAL_TRUTH``, close to R nlme's fit of ``Theoph``) and
written as a NONMEM-style CSV (:func:`sknlme.data.to_long`). Each tool then
runs in its own process on that CSV, one after the other for the same ``N``
(the order alternates between ``N`` so that load drifts on a shared machine
hit both), and the table reports

- ``wall_s``: the whole process, measured outside (interpreter start, imports,
  reading the CSV, network loading, fit, estimates with standard errors);
- ``fit_s``: the fit measured inside the process: for sknlme reading the CSV
  (:func:`sknlme.data.read_nonmem`), ``NLMEPopulationEstimator`` with default
  settings on ``FrozenEstimator(pretrained(...))`` and its ``summary()``
  (standard errors); for R ``nlme(...)`` alone (``system.time``); for NumPyro
  the NUTS run;
- ``cpu_s``: the CPU time (user + system) of that process, less sensitive than
  wall time to other load on a shared machine;
- ``load_s``: sknlme's network loading (``pretrained``), counted apart;
- ratios of these times to R's, and the estimates side by side (fixed effects
  on R's log scale, random-effect SDs, residual SD; standard errors of the
  fixed effects below).

Peers: R nlme (``bench/peers_nlme.R``: ``nlme(conc ~ SSfol(Dose, Time, lKe,
lKa, lCl), random = pdDiag(lKe + lKa + lCl ~ 1), method = "ML")``), skipped
with a note where ``Rscript`` or the nlme package is absent, stopped after
``--timeout`` seconds (600). NumPyro NUTS (hierarchical, non-centred, priors
as the model's prior), for ``N <= --numpyro-max-n`` (1,000), where installed.
``--mrna`` adds the simple mRNA transfection model (the paper's synthetic
single-cell population of ``bench/scale.py``), with R nlme on its closed form.
Every process is stopped after ``--timeout`` seconds and reported as such.
Outputs in ``--out`` (default ``bench/out``): ``peers.csv``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
R_SCRIPT = HERE / "peers_nlme.R"

# theophylline-like population (log scale): R nlme's Theoph fit, with a small
# between-subject SD of log ke (R's estimate there is 3e-5, a boundary case)
ORAL_TRUTH = dict(mean=[-2.45, 0.47, -3.23, np.log(0.7)], sd=[0.15, 0.64, 0.17, 0.0])
ORAL = dict(
    pretrained="one-compartment-oral",
    names=["log_ke", "log_ka", "log_Cl"],
    short=["ke", "ka", "Cl"],
    r_names=["lKe", "lKa", "lCl"],
    random_effects=None,  # sknlme's default: the structural parameters
)
MRNA_TRUTH = dict(
    mean=[-0.694, -7.014, 6.217, -0.164, 2.079, -3.454],
    var=[0.941, 7.014, 0.00396, 0.116, 0.0, 0.0],
)
MRNA = dict(
    pretrained="mrna-transfection",
    names=["log_delta", "log_gamma", "log_k_m0_scale", "log_t0", "log_offset"],
    short=["delta", "gamma", "kms", "t0", "offset"],
    r_names=["ld", "lg", "lk", "lt", "lo"],
    random_effects=["log_delta", "log_gamma", "log_k_m0_scale", "log_t0"],
)
SPECS = {"oral1c": ORAL, "mrna": MRNA}
TOOLS = ("sknlme", "R nlme", "NumPyro")


def truth(model):
    """True values in the table's columns (fixed effects, SDs, residual SD)."""
    spec = SPECS[model]
    t = ORAL_TRUTH if model == "oral1c" else MRNA_TRUTH
    sd = np.asarray(t["sd"]) if "sd" in t else np.sqrt(t["var"])
    out = {s: float(m) for s, m in zip(spec["short"], t["mean"], strict=False)}
    re = spec["random_effects"] or spec["names"]
    out |= {
        f"sd_{s}": float(sd[spec["names"].index(p)])
        for s, p in zip(spec["short"], spec["names"], strict=True)
        if p in re
    }
    out["sigma"] = float(np.exp(t["mean"][-1]))
    return out


def simulate_study(model, n, path, seed=0):
    """Simulate a study of ``n`` individuals and write it as a NONMEM-style CSV."""
    from sknlme.data import to_long
    from sknlme.datasets import make_population
    from sknlme.models import MRNATransfection, OneCompartmentOral

    sim = OneCompartmentOral() if model == "oral1c" else MRNATransfection()
    params = ORAL_TRUTH if model == "oral1c" else MRNA_TRUTH
    rs = int(np.random.SeedSequence([seed, n, len(model)]).generate_state(1)[0])
    X, _ = make_population(sim, n, params, random_state=rs)
    to_long(X).to_csv(path, index=False)
    return path


# ----------------------------------------------------------------- workers
def worker_sknlme(model, csv, out):
    """One sknlme fit, in this process: network load, then CSV -> estimates with SEs."""
    t0 = time.perf_counter()
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import warnings

    from sklearn.frozen import FrozenEstimator

    from sknlme.data import read_nonmem
    from sknlme.datasets import pretrained
    from sknlme.population import NLMEPopulationEstimator

    spec = SPECS[model]
    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    post = pretrained(spec["pretrained"])
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    X = read_nonmem(csv)
    kw = {} if spec["random_effects"] is None else {"random_effects": spec["random_effects"]}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = NLMEPopulationEstimator(FrozenEstimator(post), **kw).fit(X)
        summary = est.summary()
    fit_s = time.perf_counter() - t0
    fe, sd, se = est.fixed_effects_, est.random_effects_, est.standard_errors_
    res = dict(
        status="ok",
        import_s=import_s,
        load_s=load_s,
        fit_s=fit_s,
        likelihood=est.likelihood_,
        loglik=float(est.loglik_),
        warnings=sorted({str(w.message)[:80] for w in caught}),
    )
    for s, p in zip(spec["short"], spec["names"], strict=True):
        res[s] = float(fe[p])
        res[f"se_{s}"] = float(se[p])
        if p in sd.index and (spec["random_effects"] is None or p in spec["random_effects"]):
            res[f"sd_{s}"] = float(sd[p])
    res["sigma"] = float(np.exp(fe["log_sigma"]))
    res["n_summary_rows"] = len(summary)
    res["warned"] = bool(res["warnings"])
    Path(out).write_text(json.dumps(res))


def _oral_arrays(csv):
    """Padded times, values, mask, dose amounts and times from the CSV (one dose each)."""
    d = pd.read_csv(csv)
    dose = d[d.EVID == 1].groupby("ID")[["AMT", "TIME"]].first()
    obs = d[(d.EVID == 0) & (d.MDV == 0)].copy()
    obs["k"] = obs.groupby("ID").cumcount()
    ids = dose.index.to_numpy()
    T = int(obs.k.max()) + 1
    row = pd.Series(np.arange(ids.size), index=ids)[obs.ID].to_numpy()
    t = np.zeros((ids.size, T))
    y = np.zeros((ids.size, T))
    m = np.zeros((ids.size, T), dtype=bool)
    t[row, obs.k], y[row, obs.k], m[row, obs.k] = obs.TIME, obs.DV, True
    return t, y, m, dose.AMT.to_numpy()[:, None], dose.TIME.to_numpy()[:, None]


def worker_numpyro(model, csv, out, warmup=500, samples=500):
    """NUTS on the hierarchical one-compartment model (non-centred), posterior means."""
    t0 = time.perf_counter()
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    from sknlme.models import OneCompartmentOral

    prior = OneCompartmentOral()
    pm, psd = np.asarray(prior.prior_mean), np.sqrt(np.diag(np.atleast_2d(prior.prior_cov)))
    if np.ndim(prior.prior_cov) == 1:
        psd = np.sqrt(prior.prior_cov)
    t, y, m, dose, tdose = _oral_arrays(csv)
    import_s = time.perf_counter() - t0

    def oral(t, y, m, dose, tdose):
        mu = numpyro.sample("mu", dist.Normal(pm[:3], psd[:3]).to_event(1))
        tau = numpyro.sample("tau", dist.HalfNormal(jnp.ones(3)).to_event(1))
        log_sigma = numpyro.sample("log_sigma", dist.Normal(pm[3], psd[3]))
        with numpyro.plate("id", t.shape[0]):
            z = numpyro.sample("z", dist.Normal(jnp.zeros(3), 1.0).to_event(1))
        phi = mu + tau * z
        ke, ka, cl = (jnp.exp(phi[:, k : k + 1]) for k in range(3))
        s = jnp.maximum(t - tdose, 0.0)
        diff = ka - ke
        near = jnp.abs(diff) < 1e-4
        safe = jnp.where(near, 1.0, diff)
        c = jnp.where(
            near,
            dose * ke * ka * s * jnp.exp(-ke * s) / cl,
            dose * ke * ka / (cl * safe) * (jnp.exp(-ke * s) - jnp.exp(-ka * s)),
        )
        numpyro.sample("y", dist.Normal(c, jnp.exp(log_sigma)).mask(m), obs=y)

    t0 = time.perf_counter()
    mcmc = MCMC(NUTS(oral), num_warmup=warmup, num_samples=samples, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0), t, y, m, dose, tdose)
    draws = mcmc.get_samples()
    mu, tau = np.asarray(draws["mu"]), np.asarray(draws["tau"])
    fit_s = time.perf_counter() - t0
    res = dict(status="ok", import_s=import_s, fit_s=fit_s, warmup=warmup, samples=samples)
    for k, s in enumerate(ORAL["short"]):
        res[s], res[f"se_{s}"] = float(mu[:, k].mean()), float(mu[:, k].std())
        res[f"sd_{s}"] = float(tau[:, k].mean())
    res["sigma"] = float(np.exp(np.asarray(draws["log_sigma"])).mean())
    div = mcmc.get_extra_fields().get("diverging")
    res["divergences"] = int(np.asarray(div).sum()) if div is not None else -1
    Path(out).write_text(json.dumps(res))


def r_available():
    """None when Rscript with nlme runs, else why not."""
    if shutil.which("Rscript") is None:
        return "Rscript not found (apt-get install r-base-core r-cran-nlme)"
    ok = subprocess.run(["Rscript", "-e", "library(nlme)"], capture_output=True, timeout=120)
    return None if ok.returncode == 0 else "R package nlme not installed"


def numpyro_available():
    """None when NumPyro imports, else why not."""
    try:
        import numpyro  # noqa: F401
    except ImportError:
        return "numpyro not installed (pip install numpyro)"
    return None


def _read_r(path, model):
    raw = dict(line.split(",", 1) for line in Path(path).read_text().splitlines() if "," in line)
    res = {"status": raw.pop("status"), "fit_s": float(raw.pop("fit_s"))}
    if res["status"] != "ok":
        return res
    spec = SPECS[model]
    for s, r in zip(spec["short"], spec["r_names"], strict=True):
        res[s], res[f"se_{s}"] = float(raw[f"fixed.{r}"]), float(raw[f"se.{r}"])
        if f"sd.{r}" in raw:
            res[f"sd_{s}"] = float(raw[f"sd.{r}"])
    res["sigma"], res["loglik"] = float(raw["sigma"]), float(raw["loglik"])
    res["warnings"] = [w for w in raw.get("warnings", "").split("; ") if w]
    # nlme's own trouble; SSfol's pooled initial nls warns on NaNs, which nlme survives
    res["warned"] = any("converge" in w or "step halving" in w for w in res["warnings"])
    return res


def align_swap(res):
    """mRNA: swap delta and gamma (means, SDs, SEs) so that delta > gamma (exchangeable)."""
    if "delta" in res and "gamma" in res and res["delta"] < res["gamma"]:
        for a, b in (("delta", "gamma"), ("sd_delta", "sd_gamma"), ("se_delta", "se_gamma")):
            if a in res and b in res:
                res[a], res[b] = res[b], res[a]
    return res


def _children_cpu():
    """User + system CPU seconds of finished child processes (less noisy than wall time)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_tool(tool, model, csv, workdir, timeout=600, warmup=500, samples=500):
    """Run one tool in its own process; the result dict with ``wall_s`` added."""
    out = Path(workdir) / f"{tool}-{model}-{Path(csv).stem}.out"
    out.unlink(missing_ok=True)
    if tool == "R nlme":
        cmd = ["Rscript", str(R_SCRIPT), model, str(csv), str(out)]
    else:
        worker = "sknlme" if tool == "sknlme" else "numpyro"
        cmd = [
            sys.executable,
            "-m",
            "bench.peers",
            "--worker",
            worker,
            model,
            str(csv),
            str(out),
            "--warmup",
            str(warmup),
            "--samples",
            str(samples),
        ]
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])
    }
    t0, c0 = time.perf_counter(), _children_cpu()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"status": f"stopped after {timeout} s", "wall_s": time.perf_counter() - t0}
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not out.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"status": "failed: " + " | ".join(tail)[:300], "wall_s": wall}
    res = _read_r(out, model) if tool == "R nlme" else json.loads(out.read_text())
    res["wall_s"], res["cpu_s"] = wall, _children_cpu() - c0
    return align_swap(res)


def run(
    ns,
    models=("oral1c",),
    out="bench/out",
    timeout=600,
    numpyro_max_n=1000,
    warmup=500,
    samples=500,
    seed=0,
    tools=TOOLS,
    print=print,
):
    """Simulate, run every available tool per (model, N); the long results table."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    notes = {"R nlme": r_available(), "NumPyro": numpyro_available()}
    for tool, why in notes.items():
        if why:
            print(f"note: {tool} skipped: {why}")
    rows = []
    for model in models:
        for k, n in enumerate(ns):
            csv = simulate_study(model, n, out / f"study-{model}-{n}.csv", seed=seed)
            here = [t for t in tools if not notes.get(t)]
            if model != "oral1c" or n > numpyro_max_n:
                here = [t for t in here if t != "NumPyro"]
            for tool in here[::-1] if k % 2 else here:
                res = run_tool(tool, model, csv, out, timeout, warmup, samples)
                rows.append({"model": model, "n": n, "tool": tool} | res)
                print(f"  {model} N={n} {tool}: {res['status']} wall {res['wall_s']:.1f} s")
    table = pd.DataFrame(rows)
    table.to_csv(out / "peers.csv", index=False)
    return table


def report(table, print=print):
    """Print times, ratios to R (wall and fit) and the estimates side by side."""
    for model, part in table.groupby("model", sort=False):
        spec = SPECS[model]
        est_cols = [
            c for c in spec["short"] + [f"sd_{s}" for s in spec["short"]] + ["sigma"] if c in part
        ]
        se_cols = [f"se_{s}" for s in spec["short"] if f"se_{s}" in part]
        t = part.copy()
        for col in ("wall_s", "cpu_s", "fit_s"):
            ok = (t.tool == "R nlme") & (t.status == "ok")
            r = t[ok].set_index("n")[col] if col in t else pd.Series(dtype=float)
            t[col.replace("_s", "_ratio")] = t[col] / t.n.map(r) if col in t else np.nan
        truth_row = pd.DataFrame([{"n": "", "tool": "truth"} | truth(model)])
        cols = [
            "n",
            "tool",
            "wall_s",
            "cpu_s",
            "fit_s",
            "load_s",
            "wall_ratio",
            "cpu_ratio",
            "fit_ratio",
        ]
        cols = [c for c in cols if c in t]
        print(f"\n{model}: seconds, ratio = tool / R nlme (>1: slower than R)")
        if "warned" in t:  # nlme's non-convergence, sknlme's warnings (Monte-Carlo SE)
            warned = t.warned.fillna(False).astype(bool)
            t["status"] = t.status.where(~(warned & (t.status == "ok")), "ok, warned")
        print(t[cols + ["status"]].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
        print(f"\n{model}: estimates (log-scale fixed effects, SDs, residual SD)")
        est = pd.concat(
            [
                t[["n", "tool"] + est_cols],
                truth_row[["n", "tool"] + [c for c in est_cols if c in truth_row]],
            ]
        )
        print(est.to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-"))
        if se_cols:
            print(f"\n{model}: standard errors of the fixed effects (NumPyro: posterior SD)")
            print(
                t[["n", "tool"] + se_cols].to_string(
                    index=False, float_format=lambda v: f"{v:.4f}", na_rep="-"
                )
            )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--large", action="store_true", help="add N = 100,000")
    ap.add_argument("--quick", action="store_true", help="N = 100, one-compartment only")
    ap.add_argument("--mrna", action="store_true", help="add the simple mRNA model")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per process")
    ap.add_argument("--numpyro-max-n", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="bench/out")
    ap.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    ap.add_argument(
        "--worker", nargs=4, metavar=("TOOL", "MODEL", "CSV", "OUT"), help=argparse.SUPPRESS
    )
    args = ap.parse_args(argv)
    if args.worker:
        tool, model, csv, out = args.worker
        if tool == "sknlme":
            return worker_sknlme(model, csv, out)
        return worker_numpyro(model, csv, out, args.warmup, args.samples)
    ns = [100] if args.quick else list(args.n) + ([100_000] if args.large else [])
    models = ("oral1c", "mrna") if args.mrna and not args.quick else ("oral1c",)
    table = run(
        ns,
        models,
        args.out,
        args.timeout,
        args.numpyro_max_n,
        args.warmup,
        args.samples,
        args.seed,
        tuple(args.tools),
    )
    report(table)
    return table


if __name__ == "__main__":
    main()
