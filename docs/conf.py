"""Sphinx configuration of the sknlme documentation."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("MPLBACKEND", "Agg")

project = "sknlme"
author = "the sknlme developers"
copyright = "2026, the sknlme developers"

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.intersphinx",
]
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
autodoc_typehints = "none"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
nitpicky = False
html_theme = "alabaster"
exclude_patterns = ["_build"]
# numpydoc types such as "(n, n_params)" resolve to several attributes, and
# sklearn-inherited docstrings link to sklearn's own glossary: neither is an error here.
suppress_warnings = ["autosummary.import_cycle", "ref.python", "ref.term", "ref.ref"]
