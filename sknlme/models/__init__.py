"""Mechanistic individual models: the :class:`Model` base and built-in models."""

from ._base import Model
from ._linear_gaussian import LinearGaussian

__all__ = ["LinearGaussian", "Model"]
