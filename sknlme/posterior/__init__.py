"""Posteriors of individual parameters: amortized neural estimators and exact references."""

from ._amortized import AmortizedPosterior
from ._diagnostics import check_draws, ecdf_error, posterior_metrics, sbc_ranks
from ._exact import ExactGaussianPosterior

__all__ = [
    "AmortizedPosterior",
    "ExactGaussianPosterior",
    "check_draws",
    "ecdf_error",
    "posterior_metrics",
    "sbc_ranks",
]
