"""Exact maximum likelihood of small user-defined models by adaptive Gauss-Hermite quadrature.

Independent of sknlme (numpy and scipy only): this script simulates three small
studies with its own random generator, stores their data and the exact
maximum-likelihood fit of each in ``tests/data/aghq_user_models.json``, and
``tests/test_trust_user_models.py`` checks that sknlme's default fit of the same
data, with a network trained on the model's own designs, reaches that maximum.

Each case has two structural parameters, both with a normal random effect on
the log scale, and one residual error parameter:

``decay``     y = exp(log_y0 - exp(log_k) t), additive error; 20 individuals,
              6 samples each at fixed times.
``emax``      y = exp(log_Emax) x / (exp(log_ED50) + x) at 5 dose levels x
              (the model's "times"), additive error; 24 individuals.
``logistic``  y = K / (1 + (K - 1) exp(-r t)) (y(0) = 1), K = exp(log_K),
              r = exp(log_r), proportional error; 16 individuals, each observed
              at 4 to 7 of the times 0, 1, ..., 12 (drawn per individual).

For each individual the integrand over the two random effects is centred at its
mode and scaled by the Cholesky factor of the inverse (finite-difference)
Hessian there (Pinheiro & Bates 1995), ``n`` nodes per dimension. The outer
maximisation over (means, log-variances, log residual SD) is L-BFGS-B polished
by Nelder-Mead. Convergence in the number of nodes: every case is fitted with
the two node counts of ``N_NODES`` and both optima are stored; the test uses
the larger and allows for the difference.

Run ``python bench/aghq_user_models.py`` (about six minutes on one core, most of
it logistic with 41 nodes); it
writes ``tests/data/aghq_user_models.json``
(``python bench/aghq_user_models.py logistic`` redoes one case).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

# nodes per dimension, and the larger count of the convergence check. decay and emax:
# 11 and 21 nodes give the same optimum to 1e-4. logistic: one individual (4 samples)
# has a far-from-Gaussian posterior; its term moves by 0.05 from 11 to 41 nodes and the
# total oscillates (at one theta: -180.453, -180.526, -180.489, -180.499 with 11, 21, 31,
# 41 nodes), hence 21 and 41 there: their optima differ by 0.004 in log-likelihood
# (-180.4818, -180.4857) and by 0.003 in log r.
N_NODES = {"decay": (11, 21), "emax": (11, 21), "logistic": (21, 41)}
OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "aghq_user_models.json"


# ------------------------------------------------------------------ the models
def decay(phi, t):
    """``phi`` (..., 2), ``t`` (T,) or broadcastable: predictions (..., T)."""
    return np.exp(phi[..., :1] - np.exp(phi[..., 1:2]) * t)


def emax(phi, x):
    return np.exp(phi[..., :1]) * x / (np.exp(phi[..., 1:2]) + x)


def logistic(phi, t):
    k, r = np.exp(phi[..., :1]), np.exp(phi[..., 1:2])
    return k / (1.0 + (k - 1.0) * np.exp(-r * t))


CASES = {
    # name: (function, error kind, true means, true SDs, true residual, n, times, n_obs range)
    "decay": (decay, "additive", [2.0, -0.7], [0.3, 0.4], 0.3, 20,
              [0.5, 1.0, 2.0, 3.0, 5.0, 8.0], None),
    "emax": (emax, "additive", [4.6, 2.3], [0.2, 0.5], 5.0, 24,
             [1.0, 3.0, 10.0, 30.0, 100.0], None),
    "logistic": (logistic, "proportional", [3.0, -0.22], [0.25, 0.3], 0.1, 16,
                 list(np.arange(13.0)), (4, 7)),
}  # fmt: skip


def simulate(name, seed=0):
    """Individuals ``(times, values)`` of case ``name``."""
    func, error, mu, sd, sigma, n, grid, n_obs = CASES[name]
    rng = np.random.default_rng([seed, list(CASES).index(name)])
    grid = np.asarray(grid)
    out = []
    for _ in range(n):
        if n_obs is None:
            t = grid
        else:
            m = rng.integers(n_obs[0], n_obs[1] + 1)
            t = np.sort(rng.choice(grid, size=m, replace=False))
        phi = np.asarray(mu) + np.asarray(sd) * rng.standard_normal(2)
        f = func(phi, t)
        scale = sigma if error == "additive" else sigma * np.abs(f)
        out.append((t, f + scale * rng.standard_normal(t.size)))
    return out


# ------------------------------------------------------------------- the AGHQ
class Study:
    def __init__(self, individuals, func, error):
        n, T = len(individuals), max(len(t) for t, _ in individuals)
        self.t, self.y = np.ones((n, T)), np.zeros((n, T))
        self.mask = np.zeros((n, T), bool)
        for i, (t, y) in enumerate(individuals):
            self.t[i, : len(t)], self.y[i, : len(t)], self.mask[i, : len(t)] = t, y, True
        self.func, self.error = func, error
        self.modes = np.zeros((n, 2))

    def log_lik(self, phi, log_sigma):
        """log p(y_i | phi) for ``phi`` (n, m, 2): (n, m)."""
        f = self.func(phi, self.t[:, None, :])  # (n, m, T)
        sd = np.exp(log_sigma) * (1.0 if self.error == "additive" else np.abs(f))
        z = (self.y[:, None, :] - f) / sd
        terms = -0.5 * z**2 - np.log(sd) - 0.5 * np.log(2 * np.pi)
        return np.sum(np.where(self.mask[:, None, :], terms, 0.0), axis=2)


def _neg_log_joint(study, eta, mu, var, log_sigma):
    """-log p(y_i | mu + eta) p(eta) up to the constant of p(eta): (n, m) for eta (n, m, 2)."""
    with np.errstate(all="ignore"):
        v = -study.log_lik(mu + eta, log_sigma) + 0.5 * np.sum(eta**2 / var, axis=-1)
    return np.where(np.isfinite(v), v, np.inf)


def _grad_hess(study, eta, mu, var, log_sigma, h=1e-4):
    """Central finite-difference gradient (n, 2) and Hessian (n, 2, 2) at ``eta`` (n, 2)."""
    e = np.eye(2) * h
    pts = [eta]
    for a in range(2):
        pts += [eta + e[a], eta - e[a]]
    pts += [eta + e[0] + e[1], eta + e[0] - e[1], eta - e[0] + e[1], eta - e[0] - e[1]]
    f = _neg_log_joint(study, np.stack(pts, axis=1), mu, var, log_sigma)
    g = np.stack([(f[:, 1] - f[:, 2]), (f[:, 3] - f[:, 4])], axis=1) / (2 * h)
    h00 = (f[:, 1] - 2 * f[:, 0] + f[:, 2]) / h**2
    h11 = (f[:, 3] - 2 * f[:, 0] + f[:, 4]) / h**2
    h01 = (f[:, 5] - f[:, 6] - f[:, 7] + f[:, 8]) / (4 * h**2)
    H = np.stack([np.stack([h00, h01], -1), np.stack([h01, h11], -1)], -2)
    return g, H


def modes_and_hessians(study, mu, var, log_sigma, n_iter=50):
    """Modes of each individual's joint density in eta by damped Newton, and Hessians there."""
    eta = study.modes.copy()
    lam = np.full(len(eta), 1e-3)
    f = _neg_log_joint(study, eta[:, None], mu, var, log_sigma)[:, 0]
    for _ in range(n_iter):
        g, H = _grad_hess(study, eta, mu, var, log_sigma)
        w, V = np.linalg.eigh(H)
        Hp = np.einsum("nab,nb,ncb->nac", V, np.maximum(w, 1e-8) + lam[:, None], V)
        step = -np.linalg.solve(Hp, g[..., None])[..., 0]
        f_new = _neg_log_joint(study, (eta + step)[:, None], mu, var, log_sigma)[:, 0]
        better = f_new < f
        eta[better], f[better] = (eta + step)[better], f_new[better]
        lam = np.where(better, lam / 10, lam * 10)
        if np.all(np.abs(step) < 1e-9):
            break
    study.modes = eta
    return eta, _grad_hess(study, eta, mu, var, log_sigma)[1]


def individual_logliks(theta, study, nodes, log_w):
    mu, log_var, log_sigma = theta[:2], theta[2:4], theta[4]
    var = np.exp(log_var)
    eta_hat, H = modes_and_hessians(study, mu, var, log_sigma)
    w, V = np.linalg.eigh(H)
    w = np.maximum(w, 1e-10)
    L = V / np.sqrt(w)[:, None, :]  # L L^T = H^-1
    eta = eta_hat[:, None, :] + np.sqrt(2.0) * np.einsum("qb,nab->nqa", nodes, L)
    log_f = -_neg_log_joint(study, eta, mu, var, log_sigma) - 0.5 * np.sum(
        log_var + np.log(2 * np.pi)
    )
    log_terms = log_f + log_w + np.sum(nodes**2, axis=1)
    m = log_terms.max(axis=1)
    lse = m + np.log(np.exp(log_terms - m[:, None]).sum(axis=1))
    return lse - 0.5 * np.sum(np.log(w), axis=1) + np.log(2.0)  # |det sqrt(2) L| = 2 / sqrt|H|


def fit(individuals, func, error, start, n_nodes):
    x1d, w1d = np.polynomial.hermite.hermgauss(n_nodes)
    g0, g1 = np.meshgrid(x1d, x1d, indexing="ij")
    nodes = np.stack([g0.ravel(), g1.ravel()], axis=1)
    log_w = np.log(np.outer(w1d, w1d).ravel())
    study = Study(individuals, func, error)

    def f(theta):
        with np.errstate(all="ignore"):
            value = -individual_logliks(theta, study, nodes, log_w).sum()
        return value if np.isfinite(value) else 1e10

    bounds = [(-10, 10)] * 2 + [(-15, 3)] * 2 + [(-8, 4)]
    res = minimize(f, start, method="L-BFGS-B", bounds=bounds, options={"eps": 1e-6})
    res = minimize(
        f, res.x, method="Nelder-Mead", options={"xatol": 1e-7, "fatol": 1e-9, "maxfev": 4000}
    )
    return res.x, -res.fun


def main(cases=None):
    out = json.loads(OUT.read_text()) if OUT.exists() else {}
    for name, (func, error, mu, sd, sigma, *_rest) in CASES.items():
        if cases and name not in cases:
            continue
        individuals = simulate(name)
        start = np.array([*mu, *(2 * np.log(sd)), np.log(sigma)])
        entry = {
            "error": error,
            "data": [{"times": t.tolist(), "values": y.tolist()} for t, y in individuals],
        }
        for n_nodes in N_NODES[name]:
            t0 = time.perf_counter()
            x, ll = fit(individuals, func, error, start, n_nodes)
            entry[f"nodes_{n_nodes}"] = {"theta": x.tolist(), "loglik": ll}
            print(f"{name:9s} {n_nodes:2d} nodes: loglik {ll:10.4f}  x {np.round(x, 4)}"
                  f"  ({time.perf_counter() - t0:.1f} s)")  # fmt: skip
        entry["n_nodes"] = n_nodes
        entry["theta"], entry["loglik"] = x.tolist(), ll
        out[name] = entry
        OUT.parent.mkdir(exist_ok=True)
        OUT.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:] or None)
