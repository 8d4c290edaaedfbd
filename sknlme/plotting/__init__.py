"""Figures: individual fits, VPC, posterior diagnostics, profile likelihoods."""

from ._diagnostics import plot_calibration_ecdf, plot_loss, plot_recovery
from ._fits import plot_individual_fits, plot_observed_vs_predicted, plot_vpc

__all__ = [
    "plot_calibration_ecdf",
    "plot_individual_fits",
    "plot_loss",
    "plot_observed_vs_predicted",
    "plot_recovery",
    "plot_vpc",
]
from ._profiles import plot_profiles  # noqa: E402

__all__ += ["plot_profiles"]
