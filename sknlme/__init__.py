"""sknlme: amortized non-linear mixed-effects models in scikit-learn style."""

import os

# Keras reads its backend once, at first import: choose JAX unless the user chose.
os.environ.setdefault("KERAS_BACKEND", "jax")

from . import data, datasets, models  # noqa: E402

__version__ = "0.1.0.dev0"

__all__ = ["data", "datasets", "models", "__version__"]
