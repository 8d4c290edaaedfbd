"""A fit's evaluation objective is built once per data content and fit, not per table."""

import dataclasses

import numpy as np

from sknlme.models import LinearGaussian
from sknlme.population import NLMEPopulationEstimator
from sknlme.posterior import ExactGaussianPosterior


def test_evaluation_objective_kept_for_the_same_data_and_fit():
    model = LinearGaussian(n_params=1, sigma=0.3)
    X, _ = model.simulate(10, random_state=0)
    pop = NLMEPopulationEstimator(
        ExactGaussianPosterior(model).fit(), n_samples=20, n_starts=1, random_state=0
    ).fit(X)
    first = pop._eval_objective(X)
    assert pop._eval_objective(X.copy()) is first  # same content, another table
    table = pop.observation_table(X)
    # the same data changed in one value is new data
    Y = X.copy()
    rec = Y["records"].iloc[0]
    Y.iloc[0, Y.columns.get_loc("records")] = dataclasses.replace(rec, values=rec.values + 1.0)
    assert pop._eval_objective(Y) is not first
    assert not np.allclose(pop.observation_table(Y)["IPRED"], table["IPRED"])
    # a refit is a new fit
    pop.fit(X)
    assert pop._eval_objective(X) is not first
    np.testing.assert_allclose(pop.observation_table(X)["IPRED"], table["IPRED"])
