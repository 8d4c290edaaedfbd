"""Shipped data sets, simulated populations and pretrained networks."""

from ._theophylline import load_theophylline

__all__ = ["load_theophylline"]
