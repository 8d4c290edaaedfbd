"""Figures: individual fits, VPC, posterior diagnostics, profile likelihoods."""

from ._fits import plot_individual_fits, plot_observed_vs_predicted, plot_vpc
