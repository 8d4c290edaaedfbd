"""Test configuration: environment defaults set before anything imports keras."""

import os
import tempfile

_TMP = tempfile.mkdtemp(prefix="sknlme-tests-")
os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("KERAS_HOME", os.path.join(_TMP, "keras"))
os.environ.setdefault("MPLCONFIGDIR", os.path.join(_TMP, "matplotlib"))
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(_TMP, "numba"))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running check, deselect with -m 'not slow'")
