"""Every public object has a numpydoc docstring with an Examples section.

Public means: exported by a subpackage's ``__all__`` (or lazily by
``sknlme``), the public functions of the CLI and the report module, and the
public methods (not properties) that sknlme classes among them define or
inherit from other sknlme classes. The examples themselves run as doctests
(``--doctest-modules``).
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import sknlme

SUBPACKAGES = ["data", "models", "simulate", "posterior", "population", "plotting", "datasets"]
TOP_LEVEL_MODULES = ["sknlme.cli", "sknlme._report"]


def _exports():
    """``{qualified name: object}`` of every exported class and function."""
    out = {}
    for sub in SUBPACKAGES:
        module = importlib.import_module(f"sknlme.{sub}")
        for name in module.__all__:
            out[f"sknlme.{sub}.{name}"] = getattr(module, name)
    for name in sknlme._LAZY:
        obj = getattr(sknlme, name)
        if not inspect.ismodule(obj):
            out[f"sknlme.{name}"] = obj
    for module_name in TOP_LEVEL_MODULES:
        module = importlib.import_module(module_name)
        for name, obj in vars(module).items():
            if (
                not name.startswith("_")
                and inspect.isfunction(obj)
                and obj.__module__ == module_name
            ):
                out[f"{module_name}.{name}"] = obj
    # constants (str, int) carry the docstring of their type
    return {k: v for k, v in out.items() if inspect.isclass(v) or callable(v)}


def _methods(cls):
    """``{qualified name: function}`` of the public methods sknlme classes give ``cls``."""
    out = {}
    for klass in cls.__mro__:
        if not klass.__module__.startswith("sknlme"):
            continue
        for name, attr in vars(klass).items():
            if name.startswith("_") or isinstance(attr, property):
                continue
            func = attr.__func__ if isinstance(attr, classmethod | staticmethod) else attr
            if inspect.isfunction(func):
                out.setdefault(f"{klass.__module__}.{klass.__qualname__}.{name}", func)
    return out


def _public_objects():
    objects = {}
    for name, obj in _exports().items():
        objects.setdefault(name, obj)
        if inspect.isclass(obj):
            objects.update(_methods(obj))
    return objects


def _missing():
    missing = []
    seen = set()
    for name, obj in sorted(_public_objects().items()):
        key = getattr(obj, "py_func", obj)
        if id(key) in seen:
            continue
        seen.add(id(key))
        doc = inspect.getdoc(obj) or ""
        if "Examples" not in doc:
            missing.append(name if doc else f"{name} (no docstring)")
    return missing


def test_public_objects_are_found():
    objects = _public_objects()
    assert "sknlme.data.Study" in objects
    assert "sknlme.plotting.plot_vpc" in objects
    assert "sknlme.data._padded.Padded.take" in objects
    assert "sknlme.cli.main" in objects


def test_every_public_object_has_examples():
    missing = _missing()
    assert not missing, f"{len(missing)} public objects without an Examples section:\n" + "\n".join(
        missing
    )


def test_api_reference_lists_every_export():
    api = (Path(__file__).resolve().parents[1] / "docs" / "api.rst").read_text()
    missing = [
        f"{sub}.{name}"
        for sub in SUBPACKAGES
        for name in importlib.import_module(f"sknlme.{sub}").__all__
        if f"{sub}.{name}" not in api
    ]
    assert not missing, f"docs/api.rst does not list {missing}"
