"""Population level: the Monte-Carlo marginal likelihood and its parametrisations."""

from ._objective import PopulationObjective, amortized_offsets

__all__ = ["PopulationObjective", "amortized_offsets"]
from ._estimator import NLMEPopulationEstimator  # noqa: E402

__all__ += ["NLMEPopulationEstimator"]
