"""Model base additions (predict), error models and the per-individual RNG streams."""

import numba
import numpy as np
import pytest
from scipy import stats

from sknlme.models import ErrorModel, LinearGaussian
from sknlme.simulate import draw_seed, standard_normal


def test_predict_generic_shapes_and_times():
    model = LinearGaussian(times=[0.0, 0.5, 1.0], n_params=2)
    X, phi = model.simulate(4, random_state=0)
    p = model.predict(phi.to_numpy(), X)
    np.testing.assert_allclose(p[..., 0], phi.to_numpy() @ model.design_matrix(model.times).T)
    assert model.predict(np.zeros((4, 5, 2)), X).shape == (4, 5, 3, 1)
    fine = model.predict(phi.to_numpy(), X, times=np.linspace(0, 1, 11))
    assert fine.shape == (4, 11, 1)
    with pytest.raises(ValueError, match="phi must have shape"):
        model.predict(np.zeros((3, 2)), X)
    with pytest.raises(ValueError, match="times must be finite"):
        model.predict(phi.to_numpy(), X, times=[0.0, np.nan])


@pytest.mark.parametrize("kind", ["additive", "proportional", "combined"])
def test_error_model_loglik_and_noise(kind):
    err = ErrorModel(kind)
    rng = np.random.default_rng(0)
    pred = rng.uniform(0.5, 3.0, (5, 3, 4, 2))
    params = rng.normal(-1.0, 0.3, (5, 3, err.n_params))
    values = rng.uniform(0.5, 3.0, (5, 4, 2))
    mask = rng.uniform(size=(5, 4, 2)) > 0.2
    got = err.log_likelihood(pred, params, values, mask)
    for i in range(5):
        for k in range(3):
            sd = err.sd(pred[i, k], params[i, k])
            ref = stats.norm(pred[i, k], sd).logpdf(values[i])[mask[i]].sum()
            assert got[i, k] == pytest.approx(ref, rel=1e-12)
    f = np.full((4000, 5, 1), 2.0)
    e = np.full((4000, err.n_params), -1.0)
    z = (err.add_noise(f, e, 0) - f) / err.sd(2.0, e[0])
    # 20,000 N(0,1) values: 5 SE of the SD is 5 / sqrt(40000) = 0.025
    assert abs(z.std() - 1) < 0.025 and abs(z.mean()) < 5 / np.sqrt(z.size)


def test_streams_independent_of_threads_and_individuals():
    seed = draw_seed(np.random.RandomState(1))
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = standard_normal(seed, 300, 40)
    finally:
        numba.set_num_threads(threads)
    np.testing.assert_array_equal(one, standard_normal(seed, 300, 40))
    # a row depends only on (seed, row): a bigger population reuses the first rows
    np.testing.assert_array_equal(standard_normal(seed, 500, 40)[:300], one)
    assert not np.array_equal(standard_normal(seed + np.uint64(1), 300, 40), one)
    # neighbouring individuals are uncorrelated: |r| of 40 * 299 pairs < 5 / sqrt(m)
    r = np.corrcoef(one[:-1].ravel(), one[1:].ravel())[0, 1]
    assert abs(r) < 5 / np.sqrt(one[1:].size)


def test_standard_normal_distribution():
    z = standard_normal(draw_seed(np.random.default_rng(3)), 2000, 100).ravel()
    assert stats.kstest(z, "norm").pvalue > 1e-4
    # tails beyond the ziggurat base (3.44) are sampled: expected 2e5 * 5.8e-4 = 115
    tail = (np.abs(z) > 3.442619855899).sum()
    assert abs(tail - z.size * 2 * stats.norm.sf(3.442619855899)) < 5 * np.sqrt(115)
    assert abs(stats.kurtosis(z)) < 5 * np.sqrt(24 / z.size)
