"""Shipped data sets, simulated populations and pretrained networks."""

from ._population import make_population
from ._pretrained import pretrained, pretrained_names
from ._quinidine import load_quinidine
from ._theophylline import load_theophylline

__all__ = [
    "load_quinidine",
    "load_theophylline",
    "make_population",
    "pretrained",
    "pretrained_names",
]
