"""Every script in examples/ runs with small arguments and writes its outputs.

The scripts are found by a glob, so a new example is tested automatically; it
must also get an entry in ``FAST`` (arguments that make it run in seconds and
the files it must write), or its test fails and says so.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MIN_FIGURE_BYTES = 10_000  # an empty or failed figure is a few kB

# script stem -> (small arguments, files the script must write to --out)
FAST = {
    "theophylline": (
        ["--n-starts", "2"],
        ["estimates.csv", "individual_fits.png", "vpc.png"],
    ),
    "covariate_pipeline": (
        ["--n", "16", "--folds", "2", "--n-starts", "2", "--likelihood", "amortized"],
        ["cv_results.csv", "estimates.csv", "covariate_effect.png"],
    ),
    "train_model": (
        ["--quick", "--likelihood", "amortized", "--n-individuals", "20"],
        [
            "loss.png",
            "recovery.png",
            "calibration.png",
            "diagnostics.csv",
            "logistic-growth.sknlme",
            "estimates.csv",
            "population_fits.png",
        ],
    ),
    "single_cell_scale": (
        ["--n", "40", "--n-starts", "2"],
        ["results.csv", "scale.png"],
    ),
}


def load_example(path):
    """Import a script by file path under a unique module name.

    The module is registered in ``sys.modules`` so that what the script
    defines is importable by name while it runs (a saved posterior records
    its model class by import path and the script loads it back).
    """
    name = f"sknlme_examples_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def test_examples_found():
    assert SCRIPTS, f"no example scripts in {EXAMPLES}"
    stale = sorted(set(FAST) - {p.stem for p in SCRIPTS})
    assert not stale, f"FAST has entries for missing examples: {stale}"


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.stem)
def test_example_runs(path, tmp_path):
    if path.stem not in FAST:
        pytest.fail(
            f"examples/{path.name} has no entry in FAST of {Path(__file__).name}: add arguments "
            "that make it run in seconds and the files it writes"
        )
    args, outputs = FAST[path.stem]
    module = load_example(path)
    try:
        assert module.__doc__ and "Run::" in module.__doc__, "module docstring with 'Run::'"
        assert module.main([*args, "--out", str(tmp_path)]) == 0
    finally:
        sys.modules.pop(module.__name__, None)
    missing = [name for name in outputs if not (tmp_path / name).is_file()]
    assert not missing, f"{path.name} did not write {missing}"
    for figure in tmp_path.glob("*.png"):
        data = figure.read_bytes()
        assert data.startswith(PNG_MAGIC), f"{figure.name} is not a PNG file"
        assert len(data) > MIN_FIGURE_BYTES, f"{figure.name} is only {len(data)} bytes"
