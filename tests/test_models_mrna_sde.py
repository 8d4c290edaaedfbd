"""Stochastic mRNA transfection model and its Euler–Maruyama kernel."""

import numba as nb
import numpy as np
import pytest

from sknlme.data._padded import Padded
from sknlme.models._mrna_sde import MRNATransfectionSDE, simulate_sde_paths
from sknlme.simulate._sde import draw_seeds, normal_pairs

_TIMES = np.linspace(1.0 / 6.0, 30.0, 180)
# delta, gamma, k, m0, scale, t0, offset, sigma (log scale): a noisy regime
_PHI = np.log([0.2, 0.1, 2.0, 20.0, 1.0, 1.0, 1.0, 0.1])


def _paths(phi, n, seed, times=_TIMES):
    return simulate_sde_paths(np.tile(phi, (n, 1)), np.tile(times, (n, 1)),
                              np.random.RandomState(seed))  # fmt: skip


def test_streams_are_standard_normal_and_uncorrelated():
    n, m = 50, 4000
    z = normal_pairs(np.arange(1, n + 1, dtype=np.uint64), m)  # (n, m, 2)
    flat = z.reshape(n, -1)
    # mean and SD of 4e5 standard normals: SE 1.6e-3 and 1.1e-3; 5 SE bounds
    assert abs(flat.mean()) < 5 / np.sqrt(flat.size)
    assert abs(flat.std() - 1) < 5 / np.sqrt(2 * flat.size)
    # cross-stream correlations over 8,000 draws have SD 1/sqrt(8000) = 0.011;
    # the largest of 1,225 pairs stays below 5.5 SD (P(fail) ~ 1e-4)
    c = np.corrcoef(flat)
    off = c[~np.eye(n, dtype=bool)]
    assert np.max(np.abs(off)) < 5.5 / np.sqrt(flat.shape[1])
    # the two normals of a pair are uncorrelated as well
    assert abs(np.corrcoef(z[..., 0].ravel(), z[..., 1].ravel())[0, 1]) < 5 / np.sqrt(n * m)


def test_paths_have_their_own_noise():
    y = _paths(_PHI, 40, seed=0)
    assert np.all(np.isfinite(y))
    assert not np.any(np.all(y[1:] == y[0], axis=1))  # the reference code's bug: all equal
    # increments of y between observations after the switch at t0 = 1, minus
    # their mean over paths (the shared deterministic trend)
    inc = np.diff(y[:, _TIMES > 1.5], axis=1)  # (40, 172)
    resid = inc - inc.mean(axis=0)
    c = np.corrcoef(resid)
    off = c[~np.eye(40, dtype=bool)]
    # Independent paths: centring on the mean of 40 paths gives correlations
    # -1/39 on average, each with SD about 1/sqrt(172) = 0.076; the largest of
    # 780 pairs stays below 6 SD. A shared Brownian path gives +1.
    assert np.max(np.abs(off + 1 / 39)) < 6 / np.sqrt(inc.shape[1])


def test_reproducible_and_seed_dependent():
    y1 = _paths(_PHI, 5, seed=3)
    y2 = _paths(_PHI, 5, seed=3)
    y3 = _paths(_PHI, 5, seed=4)
    np.testing.assert_array_equal(y1, y2)
    assert not np.any(np.all(y1 == y3, axis=1))
    model = MRNATransfectionSDE()
    X1, _ = model.simulate(3, random_state=7)
    X2, _ = model.simulate(3, random_state=7)
    for a, b in zip(X1["records"], X2["records"], strict=True):
        np.testing.assert_array_equal(a.values, b.values)


@pytest.mark.skipif(nb.config.NUMBA_NUM_THREADS < 2, reason="needs two numba threads")
def test_independent_of_thread_count():
    before = nb.get_num_threads()
    try:
        nb.set_num_threads(1)
        y1 = _paths(_PHI, 64, seed=9)
        nb.set_num_threads(2)
        y2 = _paths(_PHI, 64, seed=9)
    finally:
        nb.set_num_threads(before)
    np.testing.assert_array_equal(y1, y2)


def test_mean_follows_deterministic_limit():
    # Many molecules (m0 = 1e5): the floor at 0 is never reached, and since the
    # drift is linear the mean of Euler–Maruyama obeys the deterministic Euler
    # recursion exactly: E m_{n+1} = (1 - delta dt) E m_n,
    # E p_{n+1} = (1 - gamma dt) E p_n + k dt E m_n.
    delta, gamma, k, m0, scale, t0, offset, dt = 0.3, 0.1, 2.0, 1e5, 1.0, 1.0, 1e-3, 0.01
    phi = np.log([delta, gamma, k, m0, scale, t0, offset, 0.1])
    times = t0 + np.arange(1.0, 30.0)  # on the Euler grid t0 + j dt
    n = 2000
    y = _paths(phi, n, seed=1, times=times)
    p = (np.exp(y) - offset) / scale  # invert the observable
    steps = np.rint((times - t0) / dt).astype(int)
    m_mean, p_mean, det = m0, 0.0, []
    for j in range(1, steps[-1] + 1):
        m_mean, p_mean = (1 - delta * dt) * m_mean, (1 - gamma * dt) * p_mean + k * dt * m_mean
        if j in steps:
            det.append(p_mean)
    det = np.array(det)
    se = p.std(axis=0, ddof=1) / np.sqrt(n)
    # 30 time points, 5 standard errors each: P(false alarm) ~ 30 * 6e-7
    assert np.all(np.abs(p.mean(axis=0) - det) < 5 * se)
    # small noise: paths stay within 1 % of the mean (CLE noise ~ 1/sqrt(m0))
    assert np.max(p.std(axis=0) / det) < 0.01
    # and the recursion is the ODE up to Euler's bias ~ delta^2 dt t / 2 < 1.5 %
    tt = times - t0
    ode = k * m0 / (delta - gamma) * (np.exp(-gamma * tt) - np.exp(-delta * tt))
    np.testing.assert_allclose(det, ode, rtol=delta**2 * dt * tt[-1] / 2 + gamma * dt)


def test_switch_at_t0_and_absorbed_paths():
    phi = _PHI.copy()
    phi[5] = np.log(10.0)  # t0 = 10
    y = _paths(phi, 3, seed=0)
    np.testing.assert_array_equal(y[:, _TIMES <= 10.0], np.log(1.0))
    # nothing to translate (k tiny) and mRNA gone at once: log(offset) forever
    dead = np.log([1e3, 0.1, 1e-300, 1e-3, 1.0, 1.0, 2.0, 0.1])
    np.testing.assert_allclose(_paths(dead, 2, seed=0), np.log(2.0), rtol=0, atol=1e-12)


def test_model_noise_and_design():
    model = MRNATransfectionSDE()
    assert not model.has_likelihood
    phi = np.tile(_PHI, (2, 1))
    times = np.array([[5.0, 2.0, 20.0], [2.0, 5.0, 20.0]])  # unsorted row 0
    design = Padded(times, np.full((2, 3, 1), np.nan), np.ones((2, 3), bool),
                    np.zeros((2, 0)), np.zeros((2, 0)), np.zeros((2, 0), bool))  # fmt: skip
    y = model.simulate_padded(phi, design, random_state=0)
    assert y.shape == (2, 3, 1) and np.all(np.isfinite(y))
    with pytest.raises(ValueError, match="log_k of individual 1"):
        model.simulate_padded(np.where([[0] * 8, [0, 0, 1, 0, 0, 0, 0, 0]], np.inf, phi), design)
    seeds = draw_seeds(np.random.default_rng(0), 3)
    assert seeds.dtype == np.uint64 and len(set(seeds.tolist())) == 3
