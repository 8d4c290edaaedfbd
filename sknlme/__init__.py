"""sknlme: amortized non-linear mixed-effects models in scikit-learn style."""

import os

# Keras reads its backend once, at first import: choose JAX unless the user chose.
os.environ.setdefault("KERAS_BACKEND", "jax")
# numba's OpenMP workers spin while waiting by default, which starves the other
# threads on small machines; let them sleep unless the user chose otherwise.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

from . import data, datasets, models  # noqa: E402

__version__ = "0.1.0.dev0"

__all__ = ["data", "datasets", "models", "__version__"]
