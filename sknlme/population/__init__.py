"""Population level: marginal likelihoods of the population parameters and their estimator."""

from ._base import BaseObjective, population_means
from ._bayesian import PopulationPosterior, normal_prior, sample_population
from ._estimator import NLMEPopulationEstimator
from ._importance import ImportanceObjective
from ._multistart import make_problem, random_startpoints, run_multistart
from ._objective import PopulationObjective, amortized_offsets
from ._profile import PopulationProfile, profile_fit
from ._result import PopulationFitResult, information_criteria, population_estimates
from ._store import StoredResults, load_results, save_results

__all__ = [
    "BaseObjective",
    "ImportanceObjective",
    "NLMEPopulationEstimator",
    "PopulationFitResult",
    "PopulationObjective",
    "PopulationPosterior",
    "PopulationProfile",
    "StoredResults",
    "amortized_offsets",
    "information_criteria",
    "load_results",
    "make_problem",
    "normal_prior",
    "population_estimates",
    "population_means",
    "profile_fit",
    "random_startpoints",
    "run_multistart",
    "sample_population",
    "save_results",
]
