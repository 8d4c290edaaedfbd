"""Built-in models by name, as used by the command line and ``pretrained``."""

from __future__ import annotations

import importlib

_BUILTIN = {
    "one-compartment-oral": "sknlme.models._one_compartment:OneCompartmentOral",
    "mrna-transfection": "sknlme.models._mrna:MRNATransfection",
    "mrna-transfection-detailed": "sknlme.models._mrna_detailed:MRNATransfectionDetailed",
    "mrna-transfection-sde": "sknlme.models._mrna_sde:MRNATransfectionSDE",
    "parent-metabolite": "sknlme.models._parent_metabolite:ParentMetabolite",
}
_LINEAR = "sknlme.models._compartmental:LinearCompartmental"
for _n, _word in ((1, "one"), (2, "two"), (3, "three")):
    _BUILTIN[f"{_word}-compartment-iv"] = (_LINEAR, {"n_compartments": _n, "route": "iv"})
    _oral = "one-compartment-oral-trans4" if _n == 1 else f"{_word}-compartment-oral"
    _BUILTIN[_oral] = (_LINEAR, {"n_compartments": _n, "route": "oral"})


def model_names():
    """Names of the built-in models.

    Examples
    --------
    >>> from sknlme.models import model_names
    >>> "one-compartment-oral" in model_names()
    True
    """
    return sorted(_BUILTIN)


def get_model(name, **kwargs):
    """Instantiate a built-in model by name.

    Parameters
    ----------
    name : str
        One of :func:`model_names`.
    **kwargs
        Passed to the model's constructor.

    Returns
    -------
    Model

    Raises
    ------
    ValueError
        For a name that is not a built-in model.

    Examples
    --------
    >>> from sknlme.models import get_model
    >>> get_model("one-compartment-oral").param_names
    ('log_ke', 'log_ka', 'log_Cl', 'log_sigma')
    >>> get_model("two-compartment-iv", error="proportional").param_names
    ('log_CL', 'log_V1', 'log_Q', 'log_V2', 'log_b')
    """
    try:
        target = _BUILTIN[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {model_names()}") from None
    target, defaults = target if isinstance(target, tuple) else (target, {})
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)(**{**defaults, **kwargs})


def load_model(spec, **kwargs):
    """A model by built-in name or by ``"module:Class"`` / ``"module:factory"``.

    Parameters
    ----------
    spec : str
        A name of :func:`model_names`, or an importable class or function (that
        returns a :class:`Model`) as ``"module:name"``; modules are looked up on
        ``sys.path`` and, failing that, in the current directory.
    **kwargs
        Passed to the constructor or factory (e.g. ``design=``).

    Returns
    -------
    Model

    Raises
    ------
    ValueError
        For an unknown name, a module or name that cannot be imported.
    TypeError
        When the factory does not take ``kwargs`` or returns no :class:`Model`.

    Examples
    --------
    >>> from sknlme.models import load_model
    >>> load_model("sknlme.models:LinearGaussian", n_params=2).param_names
    ('theta0', 'theta1')
    >>> load_model("one-compartment-oral").name
    'one-compartment-oral'
    """
    import inspect
    import os
    import sys

    from ._base import Model

    if ":" not in str(spec):
        return get_model(spec, **kwargs)
    module, _, qualname = str(spec).partition(":")
    try:
        try:
            obj = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module.split(".")[0] or os.getcwd() in sys.path:
                raise
            sys.path.append(os.getcwd())  # like `python -m`: the working directory's modules
            obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import model {spec!r}: {exc}") from None
    if not callable(obj):
        raise TypeError(f"model {spec!r} is a {type(obj).__name__}, not a class or function")
    try:
        inspect.signature(obj).bind(**kwargs)
    except TypeError as exc:
        raise TypeError(f"model {spec!r} cannot be called with {sorted(kwargs)}: {exc}") from None
    except ValueError:  # no readable signature: let the call tell
        pass
    model = obj(**kwargs)
    if not isinstance(model, Model):
        raise TypeError(f"model {spec!r} returned a {type(model).__name__}, not a sknlme Model")
    return model
