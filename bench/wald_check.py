"""Wald SEs of the coverage design against the exact observed information (issue 14).

Run ``python -m bench.wald_check`` (25 replicates of 24 subjects; 20 took 12 minutes on
2 loaded cores) or ``--n-subjects 48 --no-sknlme --no-nlme`` for the exact part only.

For the replicates of :mod:`bench.coverage` (same seeds, so replicate ``r`` here is
replicate ``r`` there) it computes

- sknlme's Wald SEs (the coverage bench's fit, :func:`bench.coverage.fit`);
- the exact observed-information SEs: the adaptive Gauss-Hermite (AGHQ) marginal
  likelihood of :mod:`bench.aghq_reference` (no sknlme code), here with random effects
  on log ka and log Cl only, as simulated, maximised from the truth, and the inverse of
  its central-difference Hessian at the maximum (parameters: the three fixed effects,
  the two log-variances, log sigma; the SEs of the SDs by the delta method);
- R nlme's (``bench/wald_nlme.R``, ML, ``pdDiag(lKa + lCl ~ 1)``) where ``Rscript``
  is installed;

and prints per parameter the mean SE of each method over the empirical SD of its
estimates over the replicates, and sknlme's SE over the AGHQ SE per replicate. Rows go
to ``--out``/``wald_check.csv``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from bench import coverage
from bench.aghq_reference import Study

RE = [1, 2]  # log ka, log Cl: the coverage design's random effects (log ke none)
TARGETS = list(coverage.TRUTH.index)  # log_ke, log_ka, log_Cl, log_sigma, SD(.), SD(.)
N_NODES = 7  # per dimension (bench.aghq_reference: 7 and 9 agree on the full design)
STEP = 1e-3  # central-difference step of the Hessian (checked by --check-step)


def subjects_of(X):
    """``(t, y, dose_times, dose_amounts)`` per individual of an individuals table."""
    out = []
    for rec in X["records"]:
        y = np.asarray(rec.values, float).ravel()
        out.append((np.asarray(rec.times, float), y, rec.dose_times, rec.dose_amounts))
    return out


def _grid(n_nodes, dim):
    x1d, w1d = np.polynomial.hermite.hermgauss(n_nodes)
    nodes = np.stack([g.ravel() for g in np.meshgrid(*([x1d] * dim), indexing="ij")], axis=1)
    weights = np.prod(np.stack(np.meshgrid(*([w1d] * dim), indexing="ij")), axis=0).ravel()
    return nodes, weights


def _embed(mu, eta):
    """Individual parameters (n, m, 3): ``mu`` plus ``eta`` (n, m, 2) on ``RE``."""
    phi = np.broadcast_to(mu, eta.shape[:-1] + (3,)).copy()
    phi[..., RE] += eta
    return phi


def _modes(study, mu, var, sigma, n_iter=40):
    """Posterior modes of the random effects (Levenberg-Marquardt) and GN Hessians there.

    As ``bench.aghq_reference.modes_and_scales``, on the random effects ``RE`` only.
    """
    eta = study.modes.copy()
    n, q = eta.shape
    lam = np.full(n, 1e-3)

    def objective(e):
        r = study.residuals(_embed(mu, e[:, None, :]))[:, 0]
        value = 0.5 * np.sum(r**2, axis=1) / sigma**2 + 0.5 * np.sum(e**2 / var, axis=1)
        return np.where(np.isfinite(value), value, np.inf), r

    f, r = objective(eta)
    for _ in range(n_iter):
        h = 1e-6
        shifted = _embed(mu, eta[:, None, :] + h * np.eye(q)[None])
        J = -(study.residuals(shifted) - r[:, None, :]) / h
        H = np.einsum("nat,nbt->nab", J, J) / sigma**2 + np.diag(1 / var)
        g = -np.einsum("nat,nt->na", J, r) / sigma**2 + eta / var
        step = -np.linalg.solve(H + lam[:, None, None] * np.eye(q), g[..., None])[..., 0]
        f_new, r_new = objective(eta + step)
        better = f_new < f
        eta[better], f[better], r[better] = (eta + step)[better], f_new[better], r_new[better]
        lam = np.where(better, lam / 10, lam * 10)
        if np.all(np.abs(step) < 1e-10):  # converged (warm starts: a few iterations)
            break
    study.modes = np.where(np.isfinite(eta), eta, 0.0)
    return eta, H


def aghq_loglik(theta, study, nodes, weights):
    """AGHQ log marginal likelihood; ``theta`` = (mu (3), log-variances (2), log sigma)."""
    mu, log_var, log_sigma = theta[:3], theta[3:5], theta[5]
    var, sigma = np.exp(log_var), np.exp(log_sigma)
    q = len(RE)
    eta_hat, H = _modes(study, mu, var, sigma)
    w, V = np.linalg.eigh(H)
    L = V / np.sqrt(np.maximum(w, 1e-12))[:, None, :]  # L L^T = H^-1
    eta = eta_hat[:, None, :] + np.sqrt(2.0) * np.einsum("qb,nab->nqa", nodes, L)
    r = study.residuals(_embed(mu, eta))
    log_f = (
        -0.5 * np.sum(r**2, axis=2) / sigma**2
        - study.n_obs[:, None] * (log_sigma + 0.5 * np.log(2 * np.pi))
        - 0.5 * np.sum(eta**2 / var, axis=2)
        - 0.5 * np.sum(log_var + np.log(2 * np.pi))
    )
    log_terms = log_f + np.log(weights) + np.sum(nodes**2, axis=1)
    log_det = -0.5 * np.sum(np.log(np.maximum(w, 1e-12)), axis=1)
    m = log_terms.max(axis=1)
    ll = m + np.log(np.exp(log_terms - m[:, None]).sum(axis=1)) + log_det + q / 2 * np.log(2.0)
    return float(ll.sum())


def fd_hessian(f, x, step):
    """Central-difference Hessian of ``f`` at ``x`` (steps ``step`` in every coordinate)."""
    d = x.size
    E = np.eye(d) * step
    H = np.empty((d, d))
    f0 = f(x)
    for j in range(d):
        H[j, j] = (f(x + E[j]) - 2 * f0 + f(x - E[j])) / step**2
        for k in range(j):
            H[j, k] = H[k, j] = (
                f(x + E[j] + E[k]) - f(x + E[j] - E[k]) - f(x - E[j] + E[k]) + f(x - E[j] - E[k])
            ) / (4 * step**2)
    return H


def aghq_fit(subjects, steps=(STEP,), n_nodes=N_NODES):
    """Exact MLE and SEs (rows ``TARGETS``), one SE column per Hessian step."""
    nodes, weights = _grid(n_nodes, len(RE))
    study = Study(subjects)
    study.modes = np.zeros((len(subjects), len(RE)))

    def nll(theta):
        with np.errstate(all="ignore"):
            value = -aghq_loglik(theta, study, nodes, weights)
        return value if np.isfinite(value) else 1e10

    truth = coverage.TRUTH
    start = np.r_[coverage.MEAN[:3], 2 * np.log(truth.iloc[4:].to_numpy()), coverage.MEAN[3]]
    bounds = [(-10, 10)] * 3 + [(-20, 3)] * 2 + [(-5, 3)]
    with threadpool_limits(1, "blas"):
        x = minimize(nll, start, method="L-BFGS-B", bounds=bounds, options={"eps": 1e-6}).x
        # Newton polish on the Hessian: the SEs are read where the gradient vanishes
        # (rep 0: after L-BFGS-B and Nelder-Mead, two Newton steps moved no estimate
        # by more than 1e-3 SE; Nelder-Mead dropped, it took most of 200 s)
        for _ in range(3):
            H = fd_hessian(nll, x, STEP)
            g = np.array([(nll(x + e) - nll(x - e)) / (2 * STEP) for e in np.eye(6) * STEP])
            x = x - np.linalg.solve(H, g)
        covs = [np.linalg.inv(fd_hessian(nll, x, h)) for h in steps]
    sd = np.exp(x[3:5] / 2)
    est = np.r_[x[:3], x[5], sd]
    out = pd.DataFrame({"estimate": est}, index=TARGETS)
    for h, cov in zip(steps, covs, strict=True):
        se = np.sqrt(np.diag(cov))
        out[f"se_{h:g}"] = np.r_[se[[0, 1, 2, 5]], sd / 2 * se[3:5]]  # delta method: SD
    out.attrs["loglik"] = -nll(x)
    return out


def sknlme_fit(X, fit_seed):
    """sknlme's estimates and Wald SEs (rows ``TARGETS``) as the coverage bench fits."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pop = coverage.fit(X, fit_seed)
    table = pop.parameter_table().set_index("parameter").loc[TARGETS]
    return table[["estimate", "se"]].rename(columns={"se": "se"}), pop.loglik_


def nlme_fits(data):
    """R nlme's fits of all replicates (``bench/wald_nlme.R``), rows ``(rep, TARGETS)``."""
    script = Path(__file__).with_name("wald_nlme.R")
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.csv", Path(tmp) / "out.csv"
        data.to_csv(src, index=False)
        subprocess.run(["Rscript", str(script), str(src), str(dst)], check=True)
        r = pd.read_csv(dst)
    rows = []
    names = {"log_ke": "lKe", "log_ka": "lKa", "log_Cl": "lCl"}
    for _, row in r.iterrows():
        for p, k in names.items():
            rows.append((row["rep"], p, row[f"est.{k}"], row[f"se.{k}"]))
        rows.append((row["rep"], "log_sigma", row["est.log_sigma"], row["se.log_sigma"]))
        for k in ("lKa", "lCl"):  # SE of the SD from that of its log: SD * se(log SD)
            sd = row[f"est.sd_{k}"]
            p = f"SD(log_{k[1:].replace('Ka', 'ka')})"
            rows.append((row["rep"], p, sd, sd * row[f"se.log_sd_{k}"]))
    return pd.DataFrame(rows, columns=["rep", "parameter", "estimate", "se"])


def long_table(rep, subjects):
    rows = [
        (rep, i + 1, t_j, y_j, float(da[0]))
        for i, (t, y, _, da) in enumerate(subjects)
        for t_j, y_j in zip(t, y, strict=True)
    ]
    return pd.DataFrame(rows, columns=["rep", "ID", "Time", "conc", "Dose"])


def summarise(table, print=print):  # noqa: A002
    """Mean SE / empirical SD per method, and sknlme SE / AGHQ SE per replicate."""
    lines = []
    for p in TARGETS:
        sub = table[table["parameter"] == p]
        cells = [f"{p:11s}"]
        for m in ("sknlme", "aghq", "nlme"):
            est, se = sub[f"{m}_estimate"], sub[f"{m}_se"]
            if est.notna().sum() > 2:
                mean, sd = se.mean(), est.std(ddof=1)
                cells.append(f"{m} {mean:.4f}/{sd:.4f} = {mean / sd:.2f}")
        if sub["sknlme_se"].notna().any():
            ratio = sub["sknlme_se"] / sub["aghq_se"]
            shift = ((sub["sknlme_estimate"] - sub["aghq_estimate"]) / sub["aghq_se"]).abs()
            cells.append(
                f"sknlme/aghq SE median {ratio.median():.3f} [{ratio.min():.3f}, "
                f"{ratio.max():.3f}], |est diff| <= {shift.max():.2f} aghq SE"
            )
        lines.append("  ".join(cells))
    for line in lines:
        print(line)
    return lines


def main(argv=None, print=print):  # noqa: A002
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-replicates", type=int, default=25)
    parser.add_argument("--first", type=int, default=0, help="first replicate")
    parser.add_argument("--n-subjects", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-sknlme", action="store_true")
    parser.add_argument("--no-nlme", action="store_true")
    parser.add_argument(
        "--nlme-only", action="store_true", help="add R nlme to --out's table of a finished run"
    )
    parser.add_argument("--check-step", action="store_true", help="Hessian steps 1e-2..1e-4")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args(argv)
    steps = (STEP, 1e-2, 3e-3, 3e-4, 1e-4) if args.check_step else (STEP,)
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"wald_check_n{args.n_subjects}.csv"
    parts, longs = [], []
    reps = range(args.first, args.first + args.n_replicates)
    if args.nlme_only:
        parts = [pd.read_csv(args.out / name)]
        reps = sorted(parts[0]["rep"].unique())
        longs = [
            long_table(rep, subjects_of(coverage.simulate(rep, args.seed, args.n_subjects)[0]))
            for rep in reps
        ]
        reps = []
    for rep in reps:
        t0 = time.perf_counter()
        X, _, fit_seed = coverage.simulate(rep, args.seed, args.n_subjects)
        subjects = subjects_of(X)
        longs.append(long_table(rep, subjects))
        exact = aghq_fit(subjects, steps)
        part = pd.DataFrame({"rep": rep, "parameter": TARGETS})
        part["aghq_estimate"] = exact["estimate"].to_numpy()
        part["aghq_se"] = exact[f"se_{STEP:g}"].to_numpy()
        for h in steps[1:]:
            part[f"aghq_se_{h:g}"] = exact[f"se_{h:g}"].to_numpy()
        part["aghq_loglik"] = exact.attrs["loglik"]
        t1 = time.perf_counter()
        part["sknlme_estimate"] = part["sknlme_se"] = part["sknlme_loglik"] = np.nan
        if not args.no_sknlme:
            skn, ll = sknlme_fit(X, fit_seed)
            part["sknlme_estimate"] = skn["estimate"].to_numpy()
            part["sknlme_se"] = skn["se"].to_numpy()
            part["sknlme_loglik"] = ll
        print(f"rep {rep}: aghq {t1 - t0:.0f} s, sknlme {time.perf_counter() - t1:.0f} s")
        parts.append(part)
        pd.concat(parts).to_csv(args.out / name, index=False)
    table = pd.concat(parts, ignore_index=True)
    table["nlme_estimate"] = table["nlme_se"] = np.nan  # (re)filled below
    if not args.no_nlme and shutil.which("Rscript"):
        r = nlme_fits(pd.concat(longs)).set_index(["rep", "parameter"])
        key = pd.MultiIndex.from_frame(table[["rep", "parameter"]])
        table["nlme_estimate"] = r["estimate"].reindex(key).to_numpy()
        table["nlme_se"] = r["se"].reindex(key).to_numpy()
    table.to_csv(args.out / name, index=False)
    n_reps = table["rep"].nunique()
    print(f"{n_reps} replicates of {args.n_subjects} subjects (mean SE / SD = ratio)")
    summarise(table, print=print)
    return table


if __name__ == "__main__":
    main()
