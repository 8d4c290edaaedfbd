"""What a :class:`FunctionModel`'s function receives, and how it is saved by name."""

from __future__ import annotations

import importlib
import inspect

import numpy as np

#: Keyword arguments a model function may declare to receive each individual's
#: dose events, shape (n, D) each (padded doses: amount 0, mask False), and the
#: dosing feature data using that field needs (see ``Padded.dosing_features``).
DOSE_FIELDS = {
    "dose_times": None,
    "dose_amounts": None,
    "dose_mask": None,
    "dose_durations": "infusion",
    "dose_cmt": "compartment",
    "dose_ss": "steady_state",
    "dose_ii": None,
    "dose_reset": "reset",
}


def declared_keywords(func):
    """The dose fields and ``covariates`` that ``func`` declares, in a fixed order.

    A function with ``**kwargs`` receives them all; one whose signature cannot be
    read (some compiled functions) receives none (the positional forms only).
    """
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return ()
    names = (*DOSE_FIELDS, "covariates")
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return names
    return tuple(n for n in names if n in params)


def dosing_features(keywords):
    """The dosing features a function taking ``keywords`` simulates."""
    out = {DOSE_FIELDS[k] for k in keywords if DOSE_FIELDS.get(k)}
    if "steady_state" in out and "dose_ii" not in keywords:
        out.discard("steady_state")  # steady state needs the interdose interval too
    return frozenset(out)


def keyword_values(keywords, design, covariates):
    """``{name: array}`` of the declared keywords for ``design`` (Padded)."""
    out = {}
    for name in keywords:
        if name == "covariates":
            out[name] = covariates
        elif name == "dose_amounts":
            out[name] = np.where(design.dose_mask, design.dose_amounts, 0.0)
        else:
            out[name] = getattr(design, name)
    return out


def covariate_dict(model, covariates, n):
    """``{name: (n,) float array}`` of the model's covariates (a DataFrame or an array)."""
    if not model.covariate_names:
        return {}
    if covariates is not None and not hasattr(covariates, "columns"):
        arr = np.asarray(covariates, dtype=float).reshape(n, -1)  # simulator covariates
    else:
        arr = model.covariate_array(covariates, n)
    return {c: arr[:, j] for j, c in enumerate(model.covariate_names)}


def function_name(func):
    """``"module:qualname"`` of an importable function; TypeError saying why not.

    Examples
    --------
    >>> import numpy as np
    >>> function_name(np.exp)
    'numpy:exp'
    >>> function_name(lambda phi, t: t)
    Traceback (most recent call last):
    ...
    TypeError: func <lambda> cannot be saved by name: a lambda; define it with def ...
    """
    module = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", None) or getattr(func, "__name__", None)
    label = getattr(func, "__name__", repr(func))
    why = None
    if not module or not qualname:
        why = "it has no module and name"
    elif qualname == "<lambda>":
        why = "a lambda; define it with def in an importable module"
    elif "<locals>" in qualname:
        why = "defined inside a function; define it at the top level of an importable module"
    elif module == "__main__":
        why = "defined in __main__ (a script or notebook); move it to an importable module"
    else:
        try:
            found = resolve_function(f"{module}:{qualname}")
        except (ImportError, AttributeError):
            found = None
        if found is not func:
            why = f"{module}:{qualname} does not import back to it"
    if why:
        raise TypeError(f"func {label} cannot be saved by name: {why}")
    return f"{module}:{qualname}"


def resolve_function(text):
    """The object named ``"module:qualname"``.

    Examples
    --------
    >>> resolve_function("numpy:exp").__name__
    'exp'
    """
    module, sep, qualname = str(text).partition(":")
    if not sep or not module or not qualname:
        raise ValueError(f"expected 'module:name', got {text!r}")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def unit_exponent_array(value, names):
    """``unit_exponents`` as a float array (n_params, 3), checked; None stays None.

    Examples
    --------
    >>> unit_exponent_array({"log_V": [0, 1, -1]}, ["log_V", "log_sigma"]).tolist()
    [[0.0, 1.0, -1.0], [0.0, 0.0, 0.0]]
    """
    if value is None:
        return None
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(f"unit_exponents names unknown parameters {unknown}; parameters: "
                             f"{list(names)}")  # fmt: skip
        value = [value.get(p, (0.0, 0.0, 0.0)) for p in names]
    arr = np.asarray(value, dtype=float)
    if arr.shape != (len(names), 3) or not np.isfinite(arr).all():
        raise ValueError(
            f"unit_exponents must be finite, of shape ({len(names)}, 3) (time, amount, value "
            f"per parameter {list(names)}), got shape {arr.shape}"
        )
    return arr
