"""sknlme: amortized non-linear mixed-effects models in scikit-learn style.

The main classes are available at the top level: :class:`AmortizedPosterior`
(neural posterior of one individual's parameters), :class:`NLMEPopulationEstimator`
(population fit) and :func:`pretrained` (shipped networks). They, and the
subpackages that need Keras, are imported on first use, so ``import sknlme``
stays quick.
"""

import importlib
import os

# Keras reads its backend once, at first import: choose JAX unless the user chose.
os.environ.setdefault("KERAS_BACKEND", "jax")
# numba's OpenMP workers spin while waiting by default, which starves the other
# threads on small machines; let them sleep unless the user chose otherwise.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
# numba caches compiled kernels next to their source by default: inside site-packages
# after `pip install .`, where the cache directories outlive an uninstall and a later
# `pip install -e .` then finds an empty `sknlme` namespace package there instead of
# the editable one. A per-user cache directory avoids that (numba reads it at import).
os.environ.setdefault(
    "NUMBA_CACHE_DIR",
    os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "sknlme",
        "numba",
    ),
)

from . import data, datasets, models  # noqa: E402

__version__ = "0.1.0.dev0"

_LAZY = {
    "AmortizedPosterior": ("sknlme.posterior", "AmortizedPosterior"),
    "NLMEPopulationEstimator": ("sknlme.population", "NLMEPopulationEstimator"),
    "pretrained": ("sknlme.datasets", "pretrained"),
    "plotting": ("sknlme.plotting", None),
    "population": ("sknlme.population", None),
    "posterior": ("sknlme.posterior", None),
}

__all__ = ["data", "datasets", "models", "__version__", *_LAZY]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'sknlme' has no attribute {name!r}")
    module_name, attr = _LAZY[name]
    module = importlib.import_module(module_name)
    return module if attr is None else getattr(module, attr)


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
