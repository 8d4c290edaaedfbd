"""Population level: marginal likelihoods of the population parameters and their estimator."""

from ._base import BaseObjective, population_means
from ._bayesian import PopulationPosterior, normal_prior, sample_population
from ._bootstrap import BootstrapResult, bca_interval, bootstrap, case_deletion
from ._compare import compare, likelihood_ratio_test, mixture_chi2_sf
from ._estimator import NLMEPopulationEstimator
from ._fixed_point import minimize_fixed_proposal
from ._importance import ImportanceObjective
from ._multistart import make_problem, random_startpoints, run_multistart
from ._objective import PopulationObjective, amortized_offsets
from ._profile import PopulationProfile, profile_fit, profile_intervals
from ._residual_math import decorrelated_residuals, npde_from_simulations, residual_sd
from ._residuals import individual_table, observation_table, shrinkage
from ._result import PopulationFitResult, information_criteria, population_estimates
from ._scm import stepwise_covariates
from ._store import StoredResults, load_results, save_results
from ._surrogate import FixedProposalSurrogate
from ._tables import (
    condition_number,
    estimate_correlation,
    is_log_scale,
    lognormal_cv,
    parameter_table,
)

__all__ = [
    "BaseObjective",
    "BootstrapResult",
    "FixedProposalSurrogate",
    "ImportanceObjective",
    "NLMEPopulationEstimator",
    "PopulationFitResult",
    "PopulationObjective",
    "PopulationPosterior",
    "PopulationProfile",
    "StoredResults",
    "amortized_offsets",
    "bca_interval",
    "bootstrap",
    "case_deletion",
    "compare",
    "likelihood_ratio_test",
    "mixture_chi2_sf",
    "condition_number",
    "decorrelated_residuals",
    "estimate_correlation",
    "individual_table",
    "information_criteria",
    "is_log_scale",
    "lognormal_cv",
    "minimize_fixed_proposal",
    "npde_from_simulations",
    "observation_table",
    "parameter_table",
    "load_results",
    "make_problem",
    "normal_prior",
    "population_estimates",
    "population_means",
    "profile_fit",
    "profile_intervals",
    "random_startpoints",
    "residual_sd",
    "run_multistart",
    "shrinkage",
    "stepwise_covariates",
    "sample_population",
    "save_results",
]
