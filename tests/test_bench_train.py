"""bench.train_pretrained stays runnable: its quick probe trains the shipped configuration."""

import sys
from pathlib import Path

# bench/ is a top-level package of the repository, not of the installed sknlme
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import train_pretrained  # noqa: E402


def test_quick_probe_reports_a_completed_schedule(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the probe must write nothing (no network file, no JSON)
    summary = train_pretrained.main(["one-compartment-oral", "--quick", "--out", "nets"])
    assert summary["epochs_run"] == 2 and summary["schedule_completed"]
    assert summary["params"]["hidden_units"] == (192, 192)  # the shipped configuration
    assert list(tmp_path.iterdir()) == []
