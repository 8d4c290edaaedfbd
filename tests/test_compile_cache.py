"""JAX's persistent compilation cache: filled by one process, left alone when the user set one."""

from __future__ import annotations

import os
import subprocess
import sys

ENABLE = "from sknlme.posterior._compile_cache import enable_compilation_cache;"
LOAD_AND_SAMPLE = (
    "import os; os.environ.setdefault('KERAS_BACKEND', 'jax');"
    "from sknlme.datasets import load_theophylline, pretrained;"
    "pretrained('one-compartment-oral').sample(load_theophylline(), 5, random_state=0);"
)


def _run(code, env_update):
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env.update(env_update)
    out = subprocess.run(
        [sys.executable, "-c", code + ENABLE + "print(enable_compilation_cache())"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def test_network_programs_are_cached(tmp_path):
    ours = tmp_path / "sknlme"
    assert _run(LOAD_AND_SAMPLE, {"SKNLME_JAX_CACHE": str(ours)}) == str(ours)
    # the network's initialisers and the flow were written there
    assert len(list(ours.iterdir())) > 5


def test_user_cache_left_alone(tmp_path):
    ours, theirs = tmp_path / "sknlme", tmp_path / "user"
    env = {"SKNLME_JAX_CACHE": str(ours), "JAX_COMPILATION_CACHE_DIR": str(theirs)}
    assert _run("", env) == str(theirs)
    assert not ours.exists()


def test_cache_off():
    assert _run("", {"SKNLME_JAX_CACHE": "0"}) == "None"
