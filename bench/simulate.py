"""Simulation throughput: sknlme's compiled simulators vs per-individual solve_ivp.

Run ``python -m bench.simulate`` (``--quick`` for a short run). For every
built-in model it reports individuals simulated per second by
``Model.simulate_padded`` (compiled kernel, warm, at least 0.5 s of work per
repeat, best of 3) next to a scipy ``solve_ivp`` baseline that integrates the
model's ODE individual by individual on the same time grid (plus numpy
noise), timed in the same run. For the detailed mRNA model it also prints the
largest error of sknlme's solution against Radau at rtol 1e-8.
"""

from __future__ import annotations

import argparse
import importlib
import os
import time

import numpy as np
from scipy.integrate import solve_ivp

from sknlme.models import MRNATransfection, OneCompartmentOral


def _oral1c_ivp(phi, times, dose_t, dose_a, rtol):
    ke, ka, cl = np.exp(phi[:3])
    rhs = lambda t, a: [-ka * a[0], ka * a[0] - ke * a[1]]  # noqa: E731
    sol = solve_ivp(rhs, (0.0, times[-1]), [dose_a[0], 0.0], t_eval=times, rtol=rtol, atol=1e-9)
    return sol.y[1] * ke / cl


def _mrna_ivp(phi, times, rtol):
    delta, gamma, kms, t0, offset = np.exp(phi[:5])
    rhs = lambda t, x: [-delta * x[0], kms * x[0] - gamma * x[1]]  # noqa: E731
    p = np.zeros(times.size)
    after = times > t0
    if after.any():
        sol = solve_ivp(rhs, (t0, times[-1]), [1.0, 0.0], t_eval=times[after], rtol=rtol, atol=1e-9)
        p[after] = sol.y[1]
    return np.log(p + offset)


def _detailed_ivp(phi, times, rtol, method="Radau"):
    d1, d2, e0, k2s, k2, k1, r0, gamma, t0, offset = np.exp(phi[:10])

    def rhs(t, y):
        m, e, r, p = y
        return [
            -d1 * m * e - k1 * m * r + k2 * (r0 - r),
            d1 * m * e - d2 * (e0 - e),
            k2 * (r0 - r) - k1 * m * r,
            k2s * (r0 - r) - gamma * p,
        ]

    p = np.zeros(times.size)
    after = times > t0
    if after.any():
        try:  # the endosome equation grows like exp(delta2 t): may overflow
            with np.errstate(all="ignore"):
                sol = solve_ivp(
                    rhs,
                    (t0, times[-1]),
                    [1.0, e0, r0, 0.0],
                    t_eval=times[after],
                    method=method,
                    rtol=rtol,
                    atol=rtol * 1e-6,
                )
        except (ValueError, np.linalg.LinAlgError):
            return np.full(times.size, np.nan)
        if not sol.success:
            return np.full(times.size, np.nan)
        p[after] = sol.y[3]
    return np.log(np.maximum(p, 0.0) + offset)


def _per_second(fn, n, min_time=0.5, repeats=3):
    """Best-of-``repeats`` rate of ``fn`` (which handles ``n`` individuals)."""
    fn()  # warm (compilation)
    best = 0.0
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_time:
                break
        best = max(best, calls * n / elapsed)
    return best


def _baseline_rate(model, solve, n, rng):
    design, _ = model.sample_design(n, rng)
    phi = model.sample_prior(n, rng)
    sigma = np.exp(phi[:, -1])

    def run():
        for i in range(n):
            t = design.times[i, design.obs_mask[i]]
            f = solve(phi[i], t, design.dose_times[i], design.dose_amounts[i])
            f + sigma[i] * rng.standard_normal(f.size)

    return _per_second(run, n, min_time=0.5, repeats=1)


def _sknlme_rate(model, n, rng):
    design, cov = model.sample_design(n, rng)
    phi = model.sample_prior(n, rng)
    seeds = iter(range(10**9))
    return _per_second(lambda: model.simulate_padded(phi, design, cov, next(seeds)), n)


def _optional(module, cls):
    try:
        return getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError):
        return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller batches")
    args = parser.parse_args(argv)
    scale = 10 if args.quick else 1
    rng = np.random.RandomState(0)
    rtol = 1e-6
    rows = [
        (
            "one-compartment-oral",
            OneCompartmentOral(),
            1_000_000 // scale,
            lambda p, t, dt, da: _oral1c_ivp(p, t, dt, da, rtol),
            200 // scale,
        ),
        (
            "mrna-transfection",
            MRNATransfection(),
            200_000 // scale,
            lambda p, t, dt, da: _mrna_ivp(p, t, rtol),
            100 // scale,
        ),
    ]
    detailed = _optional("sknlme.models._mrna_detailed", "MRNATransfectionDetailed")
    if detailed is not None:
        rows.append(
            (
                "mrna-transfection-detailed",
                detailed(),
                5_000 // scale,
                lambda p, t, dt, da: _detailed_ivp(p, t, rtol),
                50 // scale,
            )
        )
    sde = _optional("sknlme.models._mrna_sde", "MRNATransfectionSDE")
    if sde is not None:
        rows.append(("mrna-transfection-sde", sde(), 20_000 // scale, None, 0))
    load = os.getloadavg()
    print(
        f"cores: {os.cpu_count()}, load average (1/5/15 min): {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f}; solve_ivp baseline at rtol={rtol}"
    )
    print(f"{'model':28s} {'n':>9s} {'sknlme ind/s':>14s} {'solve_ivp ind/s':>16s} {'ratio':>8s}")
    for name, model, n, solve, n_base in rows:
        fast = _sknlme_rate(model, n, rng)
        base = _baseline_rate(model, solve, n_base, rng) if solve is not None else np.nan
        ratio = fast / base if solve is not None else np.nan
        base_s = f"{base:16,.0f}" if solve is not None else f"{'n/a':>16s}"
        print(f"{name:28s} {n:9d} {fast:14,.0f} {base_s} {ratio:8.0f}")
    if detailed is not None:
        model = detailed()
        m = 40 // (2 if args.quick else 1)
        design, _ = model.sample_design(m, rng)
        phi = model.sample_prior(m, rng)
        pred = model._predict(phi, design, None)[..., 0]
        err = []
        for i in range(m):
            ref = _detailed_ivp(phi[i], design.times[i], 1e-8)
            if np.isfinite(ref).all() and np.isfinite(pred[i]).all():
                err.append(np.max(np.abs(np.expm1(pred[i] - ref))))
        print(
            f"detailed mRNA: max relative error of p + offset vs Radau rtol 1e-8 over "
            f"{len(err)}/{m} prior draws: {max(err):.2e} (median {np.median(err):.2e})"
        )
    else:
        print("detailed mRNA model not available (sknlme.models._mrna_detailed missing)")
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
