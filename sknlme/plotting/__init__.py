"""Figures: individual fits, goodness of fit, VPC, posterior diagnostics, profiles."""

from ._diagnostics import plot_calibration_ecdf, plot_loss, plot_recovery
from ._fits import plot_individual_fits, plot_observed_vs_predicted
from ._gof import plot_eta_covariates, plot_gof
from ._profiles import plot_profiles
from ._units import axis_label, binned_median_smoother
from ._vpc import nominal_time_bins, plot_vpc
from ._vpc_stats import censored_quantiles

__all__ = [
    "axis_label",
    "binned_median_smoother",
    "censored_quantiles",
    "nominal_time_bins",
    "plot_calibration_ecdf",
    "plot_eta_covariates",
    "plot_gof",
    "plot_individual_fits",
    "plot_loss",
    "plot_observed_vs_predicted",
    "plot_profiles",
    "plot_recovery",
    "plot_vpc",
]
