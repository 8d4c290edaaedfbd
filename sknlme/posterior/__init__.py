"""Posteriors of individual parameters: amortized neural estimators and exact references."""

from ._amortized import AmortizedPosterior
from ._diagnostics import check_draws, ecdf_error, posterior_metrics, sbc_ranks
from ._exact import ExactGaussianPosterior
from ._laplace import laplace_approximations
from ._laplace_posterior import LaplacePosterior
from ._presimulate import load_presimulated, presimulate
from ._units import StudyBoundPosterior, study_scales

__all__ = [
    "AmortizedPosterior",
    "ExactGaussianPosterior",
    "LaplacePosterior",
    "StudyBoundPosterior",
    "check_draws",
    "ecdf_error",
    "laplace_approximations",
    "load_presimulated",
    "posterior_metrics",
    "presimulate",
    "sbc_ranks",
    "study_scales",
]
