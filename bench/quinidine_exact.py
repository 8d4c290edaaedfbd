"""Exact maximum likelihood of the Quinidine models with a random effect on log CL only.

With one random effect the marginal likelihood of each patient is a one-dimensional
integral, computed here by Gauss-Hermite quadrature (100 nodes: within 0.002 of 200
nodes and of a 6001-point grid over +-12 SD at R's base estimate) and maximised by
Nelder-Mead: an independent check of sknlme's importance-sampling fit and of nlme's
Lindstrom-Bates linearisation. Writes ``tests/data/quinidine_exact.json``.

Run: ``python -m bench.quinidine_exact`` (about a minute on one core).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp

from sknlme.datasets import load_quinidine
from sknlme.models import LinearCompartmental

# covariates on log CL, centred as in tests/test_quinidine_nlme.py
COVARIATES = {"GLYCO": 1.0, "CRCL50": 0.0, "WT": 70.0}
OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "quinidine_exact.json"


def quadrature_loglik(X, log_cl, log_v, log_ka, sd_cl, sigma, nodes=100):
    """Exact log-likelihood: ``log_cl`` per patient (n,), one random effect of SD ``sd_cl``."""
    model = LinearCompartmental(1, "oral")
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    phi = np.empty((len(X), nodes, 4))
    phi[..., 0] = np.asarray(log_cl, dtype=float)[:, None] + sd_cl * x
    phi[..., 1], phi[..., 2], phi[..., 3] = log_v, log_ka, np.log(sigma)
    terms = model.log_likelihood(phi, X) + np.log(w / np.sqrt(2 * np.pi))
    return float(np.sum(logsumexp(terms, axis=1)))


def covariate_matrix(X):
    return np.column_stack([X[c].to_numpy(float) - ref for c, ref in COVARIATES.items()])


def fit(X, with_covariates, start):
    C = covariate_matrix(X) if with_covariates else np.zeros((len(X), 0))

    def nll(p):
        k = C.shape[1]
        log_cl = p[0] + C @ p[1 : 1 + k]
        lv, lka, log_sd, log_sigma = p[1 + k :]
        return -quadrature_loglik(X, log_cl, lv, lka, np.exp(log_sd), np.exp(log_sigma))

    res = minimize(
        nll,
        start,
        method="Nelder-Mead",
        options={"xatol": 1e-6, "fatol": 1e-7, "maxiter": 20000, "maxfev": 20000},
    )
    res = minimize(nll, res.x, method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-7})
    k = C.shape[1]
    out = {
        "log_CL": res.x[0],
        "log_V1": res.x[1 + k],
        "log_ka": res.x[2 + k],
        "sd_log_CL": float(np.exp(res.x[3 + k])),
        "sigma": float(np.exp(res.x[4 + k])),
        "loglik": -float(res.fun),
    }
    if k:
        out |= {f"{c}:log_CL": b for c, b in zip(COVARIATES, res.x[1 : 1 + k], strict=True)}
    return {key: float(v) for key, v in out.items()}


def main():
    X = load_quinidine()
    base = fit(X, False, [2.5, 5.4, -0.3, np.log(0.33), np.log(0.76)])
    cov = fit(X, True, [2.5, -0.35, 0.15, 0.004, 5.4, -0.5, np.log(0.25), np.log(0.75)])
    OUT.write_text(json.dumps({"base_cl": base, "covariate_cl": cov}, indent=1) + "\n")
    print(json.dumps({"base_cl": base, "covariate_cl": cov}, indent=1))


if __name__ == "__main__":
    main()
