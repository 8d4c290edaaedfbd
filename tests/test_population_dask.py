"""The importance likelihood's per-individual passes on a Dask cluster give the same fit."""

import warnings

import numpy as np
import pytest

from sknlme.models import OneCompartmentOral
from sknlme.population import NLMEPopulationEstimator
from sknlme.population._sharding import RowShards
from sknlme.posterior import LaplacePosterior

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture(scope="module")
def study():
    model = OneCompartmentOral()
    X, _ = model.simulate(10, random_state=4)
    return model, X


def _fit(model, X, scheduler):
    est = NLMEPopulationEstimator(
        LaplacePosterior(model).fit(), n_samples=40, n_starts=3, random_state=0, scheduler=scheduler
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return est.fit(X)


def test_sharded_fit_is_the_in_process_fit_bit_for_bit(study, client):
    model, X = study
    here = _fit(model, X, None)
    there = _fit(model, X, client)
    assert here.likelihood_ == there.likelihood_ == "importance"
    np.testing.assert_array_equal(there.x_, here.x_)
    assert there.loglik_ == here.loglik_
    np.testing.assert_array_equal(there.standard_errors_, here.standard_errors_)
    # the client is detached afterwards: later passes run in this process
    assert there.objective_.shards.client is None


def test_row_blocks_on_a_client_cover_every_individual_once(client):
    shards = RowShards(client)
    blocks = shards.blocks(11, 100)
    assert len(blocks) == 4  # twice the 2 worker threads
    np.testing.assert_array_equal(np.concatenate(blocks), np.arange(11))

    class Rows:
        values = np.arange(11.0)

    out = shards.map(lambda obj, rows, k: obj.values[rows] * k, Rows(), blocks, 2.0)
    np.testing.assert_array_equal(np.concatenate(out), 2.0 * np.arange(11))


def test_scheduler_rejects_other_values(study):
    model, X = study
    with pytest.raises(ValueError, match="scheduler"):
        NLMEPopulationEstimator(LaplacePosterior(model).fit(), scheduler=3).fit(X)
