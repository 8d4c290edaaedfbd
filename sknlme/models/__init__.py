"""Mechanistic individual models: the :class:`Model` base and built-in models."""

from ._base import Model
from ._compartmental import LinearCompartmental
from ._error import ErrorModel, additive_log_sd
from ._function import FunctionModel
from ._linear_gaussian import LinearGaussian
from ._mrna import MRNATransfection
from ._mrna_detailed import MRNATransfectionDetailed
from ._mrna_sde import MRNATransfectionSDE
from ._one_compartment import OneCompartmentOral
from ._parent_metabolite import ParentMetabolite
from ._prior import NormalPrior, UniformPrior, prior_from_dict
from ._registry import get_model, load_model, model_names

__all__ = [
    "ErrorModel",
    "FunctionModel",
    "LinearCompartmental",
    "LinearGaussian",
    "MRNATransfection",
    "MRNATransfectionDetailed",
    "MRNATransfectionSDE",
    "Model",
    "NormalPrior",
    "OneCompartmentOral",
    "ParentMetabolite",
    "UniformPrior",
    "additive_log_sd",
    "get_model",
    "load_model",
    "model_names",
    "prior_from_dict",
]
