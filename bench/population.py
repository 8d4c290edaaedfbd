"""Population objective: analytic gradient vs finite differences, and the bandwidth bound.

Run ``python -m bench.population`` (``--quick`` for N up to 10,000 and shorter caps).

Synthetic draws in the simple mRNA layout (d = 6; random effects on the first
four parameters, none on the last two): ``phi_i = mu + shift_i`` with
``shift_i ~ N(0, diag(omega^2))`` on the first four, then ``K`` draws
``phi_ik ~ N(phi_i, 0.1^2 I)`` stored in float32, offsets
``c_ik = -log p0(phi_ik)`` for the mRNA training prior. For N in
{1,000, 10,000, 100,000}, K = 100 and covariance "diag" and "cholesky" it
reports

- the time of one value+gradient pass (median of repeats, warm);
- the memory-bandwidth bound of that pass: the bytes it reads (the float32
  samples and the float64 offsets; in brackets the samples alone) divided by
  the bandwidth of a large numpy copy (2 x bytes / time), and the ratio
  pass / bound;
- the time of one optimiser start (scipy L-BFGS-B, analytic gradient, from a
  fixed start: beta = prior mean, unit variances), its evaluations and error;
- at N = 1,000 only, the same start with finite-difference gradients (scipy's
  2-point differences: n_x + 1 evaluations per gradient, the original
  approach). A start that would run past the time cap is stopped there and
  its time extrapolated from the time per iteration times the analytic run's
  iterations; the output says so. Each FD evaluation runs the same compiled
  pass (which also forms the moments), slightly favouring the analytic side.

Optimiser starts run with BLAS limited to one thread (threadpoolctl): scipy's
L-BFGS-B calls OpenBLAS on n_x-sized problems, and OpenBLAS's thread pool made
each start 8x slower on a loaded 2-core machine (1.20 s vs 0.15 s at N = 1,000).
"""

from __future__ import annotations

import argparse
import os
import time

# libgomp's default active wait burns the cores a loaded machine needs (measured: a 1 ms pass
# took 20-40 ms with 2 threads at load 6 on 2 cores); set OMP_WAIT_POLICY=active to compare.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import numba  # noqa: E402
import numpy as np  # noqa: E402
from scipy.optimize import minimize  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from sknlme.population import PopulationObjective, amortized_offsets  # noqa: E402

NAMES = ["log_delta", "log_gamma", "log_kms", "log_t0", "log_offset", "log_sigma"]
PRIOR_MEAN = np.array([-3.0, -3.0, 5.0, 0.0, 0.0, -1.0])
PRIOR_VAR = np.array([5.0, 5.0, 11.0, 2.0, 6.0, 2.0])
TRUE_MEAN = np.array([-1.0, -2.5, 4.0, 0.5, -0.5, -1.2])
TRUE_SD = np.array([0.3, 0.4, 0.5, 0.2, 0.0, 0.0])
POST_SD = 0.1


def make_draws(n, K, seed=0, chunk=5000):
    """float32 draws (n, K, 6) and float64 amortized offsets, built in chunks."""
    rng = np.random.default_rng(seed)
    samples = np.empty((n, K, 6), dtype=np.float32)
    for s in range(0, n, chunk):
        m = min(chunk, n - s)
        phi = TRUE_MEAN + TRUE_SD * rng.standard_normal((m, 1, 6))
        samples[s : s + m] = phi + POST_SD * rng.standard_normal((m, K, 6))
    return samples, amortized_offsets(samples, PRIOR_MEAN, PRIOR_VAR)


def bandwidth(nbytes=512 * 2**20, repeats=5):
    """Bytes per second of a numpy copy (read + write) of a float32 array larger than caches."""
    a = np.ones(nbytes // 4, dtype=np.float32)
    b = np.empty_like(a)
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t)
    return 2 * a.nbytes / best


class Clock:
    """Wall and process CPU seconds since construction."""

    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self):
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def time_pass(obj, x, min_time=0.5, max_reps=50):
    """Median (wall, cpu) seconds of one value+gradient pass, warm."""
    obj.value_and_gradient(x)  # compile / warm
    times = []
    while len(times) < 3 or (sum(t[0] for t in times) < min_time and len(times) < max_reps):
        x = x.copy()
        x[0] += 1e-9  # defeat the one-entry cache
        clock = Clock()
        obj.value_and_gradient(x)
        times.append(clock.read())
    return tuple(np.median(np.array(times), axis=0))


def start_point(obj):
    return obj.pack(beta=PRIOR_MEAN, cov=np.eye(6))


def run_start(obj, x0, analytic=True, cap=np.inf):
    """One L-BFGS-B start: ((wall, cpu) seconds, evaluations, iterations, result, capped)."""
    count = {"f": 0, "it": 0}
    clock = Clock()

    def fun(x):
        count["f"] += 1
        return obj.value_and_gradient(x) if analytic else obj(x)

    def callback(*_):
        count["it"] += 1
        if clock.read()[0] > cap:
            raise StopIteration

    bounds = list(zip(*obj.bounds, strict=True))
    try:
        with threadpool_limits(limits=1, user_api="blas"):  # see the module docstring
            res = minimize(fun, x0, jac=analytic, bounds=bounds, method="L-BFGS-B",
                           callback=callback, options={"maxiter": 1000})  # fmt: skip
        capped = False
    except StopIteration:
        res, capped = None, True
    return np.array(clock.read()), count["f"], count["it"], res, capped


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="N <= 10,000, shorter FD cap")
    parser.add_argument("--K", type=int, default=100)
    args = parser.parse_args(argv)
    sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    fd_cap = 20.0 if args.quick else 120.0
    bw = bandwidth()
    PopulationObjective(*make_draws(2000, 500), NAMES).value_and_gradient(np.zeros(12))  # warm
    print(
        f"numba threads {numba.get_num_threads()} ({numba.threading_layer()} layer, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}), "
        f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"bandwidth (numpy copy, read+write): {bw / 1e9:.1f} GB/s; K = {args.K}, d = 6, "
        "random effects on the first 4 parameters; float32 draws"
    )
    print("times: wall / process CPU (CPU counts all threads; on a shared machine wall")
    print("includes waiting for a core)\n")
    head = (
        f"{'N':>7} {'cov':>8} {'n_x':>3} {'pass ms':>13} {'bound ms':>13} {'pass/bound':>10} "
        f"{'start s':>11} {'evals':>5} {'|b-true|':>8} {'FD start s':>12} {'speed-up':>11}"
    )
    print(head)
    print("-" * len(head))
    notes = []
    for n in sizes:
        samples, offsets = make_draws(n, args.K)
        for covariance in ("diag", "cholesky"):
            obj = PopulationObjective(
                samples, offsets, NAMES, covariance=covariance, random_effects=NAMES[:4]
            )
            x0 = start_point(obj)
            pw, pc = time_pass(obj, x0)
            b_all = (samples.nbytes + offsets.nbytes) / bw * 1e3  # all bytes the pass reads
            b_s = samples.nbytes / bw * 1e3
            secs, evals, iters, res, _ = run_start(obj, x0)
            err = np.abs(obj.unpack(res.x)["beta"] - TRUE_MEAN).max()
            fd_txt, speed = "", ""
            if n == sizes[0]:
                fd, _, fd_iters, _, capped = run_start(obj, x0, analytic=False, cap=fd_cap)
                if capped:
                    fd = fd / max(fd_iters, 1) * iters
                    notes.append(
                        f"FD at N={n} {covariance}: stopped after {fd_cap:.0f} s "
                        f"({fd_iters} iterations), extrapolated to {iters} iterations"
                    )
                fd_txt = f"{fd[0]:.2f}/{fd[1]:.2f}" + ("*" if capped else "")
                speed = f"{fd[0] / secs[0]:.0f}x/{fd[1] / secs[1]:.0f}x"
            print(
                f"{n:>7} {covariance:>8} {obj.n_x:>3} {pw * 1e3:>6.2f}/{pc * 1e3:<6.2f} "
                f"{b_all:>6.2f} ({b_s:>5.2f}) {pw * 1e3 / b_all:>4.1f}/{pc * 1e3 / b_all:<5.1f} "
                f"{secs[0]:>5.2f}/{secs[1]:<5.2f} {evals:>5} {err:>8.3f} {fd_txt:>12} {speed:>11}"
            )
        del samples, offsets
    for note in notes:
        print("* " + note)
    print("pass/bound: wall/CPU pass time over the bound for all bytes read (samples and")
    print("offsets); the bracketed bound counts the samples alone. speed-up: FD start over")
    print("analytic start (wall/CPU).")


if __name__ == "__main__":
    main()
