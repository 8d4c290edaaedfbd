"""Mechanistic individual models: the :class:`Model` base and built-in models."""

from ._base import Model

__all__ = ["Model"]
