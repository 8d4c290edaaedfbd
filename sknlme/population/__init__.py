"""Population level: marginal likelihoods of the population parameters and their estimator."""

from ._estimator import NLMEPopulationEstimator
from ._importance import ImportanceObjective
from ._objective import PopulationObjective, amortized_offsets

__all__ = [
    "ImportanceObjective",
    "NLMEPopulationEstimator",
    "PopulationObjective",
    "amortized_offsets",
]
