"""Shipped data sets, simulated populations and pretrained networks."""

__all__ = []
