"""bench.peers stays runnable: the study CSV, the peers at tiny N, the ratio table."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# bench/ is a top-level package of the repository, not of the installed sknlme
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import peers  # noqa: E402
from sknlme.data import read_nonmem  # noqa: E402

needs_r = pytest.mark.skipif(peers.r_available() is not None, reason="R with nlme not installed")
needs_numpyro = pytest.mark.skipif(peers.numpyro_available() is not None, reason="no numpyro")


def test_study_csv_is_nonmem_style_and_reads_back(tmp_path):
    csv = peers.simulate_study("oral1c", 15, tmp_path / "s.csv")
    d = pd.read_csv(csv)
    assert list(d.columns[:7]) == ["ID", "TIME", "DV", "AMT", "EVID", "MDV", "CMT"]
    assert (d.EVID == 1).sum() == 15  # one dose each
    X = read_nonmem(csv)
    assert len(X) == 15 and all(r.n_obs in (10, 11) for r in X["records"])
    t, y, m, dose, tdose = peers._oral_arrays(csv)
    assert t.shape == y.shape == m.shape == (15, 11) and dose.shape == (15, 1)
    assert m.sum() == sum(r.n_obs for r in X["records"]) and (tdose == 0).all()
    # the same seed gives the same study
    again = peers.simulate_study("oral1c", 15, tmp_path / "t.csv")
    assert Path(csv).read_text() == Path(again).read_text()


def test_truth_columns():
    t = peers.truth("oral1c")
    assert list(t) == ["ke", "ka", "Cl", "sd_ke", "sd_ka", "sd_Cl", "sigma"]
    assert t["sigma"] == pytest.approx(0.7)
    m = peers.truth("mrna")
    assert "sd_offset" not in m and m["sd_gamma"] == pytest.approx(np.sqrt(7.014))


def test_align_swap_orders_delta_gamma():
    res = peers.align_swap({"delta": -7.0, "gamma": -0.7, "sd_delta": 2.6, "sd_gamma": 1.0})
    assert res == {"delta": -0.7, "gamma": -7.0, "sd_delta": 1.0, "sd_gamma": 2.6}


def test_report_ratios_to_r():
    rows = [
        dict(model="oral1c", n=10, tool="R nlme", status="ok", wall_s=1.0, fit_s=0.5, ke=-2.4),
        dict(model="oral1c", n=10, tool="sknlme", status="ok", wall_s=3.0, fit_s=2.0, ke=-2.5),
        dict(model="oral1c", n=20, tool="R nlme", status="failed", wall_s=1.0, fit_s=0.1),
        dict(model="oral1c", n=20, tool="sknlme", status="ok", wall_s=4.0, fit_s=3.0, ke=-2.4),
    ]
    lines = []
    peers.report(pd.DataFrame(rows), print=lines.append)
    text = "\n".join(lines)
    assert "truth" in text and "ratio" in text
    times = lines[1].splitlines()
    head = times[0].split()
    sk10, sk20 = (dict(zip(head, times[k].split(), strict=True)) for k in (2, 4))
    assert sk10["tool"] == "sknlme" and sk10["wall_ratio"] == "3" and sk10["fit_ratio"] == "4"
    assert sk20["wall_ratio"] == "NaN"  # R failed at N = 20: no ratio


@needs_r
def test_r_nlme_recovers_the_population(tmp_path):
    csv = peers.simulate_study("oral1c", 40, tmp_path / "s.csv")
    res = peers.run_tool("R nlme", "oral1c", csv, tmp_path, timeout=120)
    assert res["status"] == "ok" and 0 < res["fit_s"] < res["wall_s"]
    t = peers.truth("oral1c")
    for k in ("ke", "ka", "Cl"):
        assert res[k] == pytest.approx(t[k], abs=0.3) and res[f"se_{k}"] > 0
    assert res["sigma"] == pytest.approx(t["sigma"], rel=0.2)


@needs_r
def test_r_nlme_on_the_mrna_closed_form(tmp_path):
    csv = peers.simulate_study("mrna", 8, tmp_path / "m.csv")
    res = peers.run_tool("R nlme", "mrna", csv, tmp_path, timeout=120)
    assert res["status"] == "ok" and res["delta"] >= res["gamma"]
    assert res["kms"] == pytest.approx(peers.truth("mrna")["kms"], abs=0.3)


@needs_numpyro
def test_numpyro_and_run_table(tmp_path):
    lines = []
    table = peers.run(
        [12], out=tmp_path, warmup=30, samples=30, tools=("R nlme", "NumPyro"), print=lines.append
    )
    ok = table[table.status == "ok"]
    assert "NumPyro" in set(ok.tool)
    row = ok[ok.tool == "NumPyro"].iloc[0]
    assert np.isfinite(row["ke"]) and row["sd_ka"] > 0 and row["fit_s"] > 0
    assert (tmp_path / "peers.csv").exists()
    peers.report(table, print=lines.append)


@pytest.mark.slow
def test_sknlme_end_to_end_tiny(tmp_path):
    csv = peers.simulate_study("oral1c", 12, tmp_path / "s.csv")
    res = peers.run_tool("sknlme", "oral1c", csv, tmp_path, timeout=900)
    assert res["status"] == "ok" and res["load_s"] > 0 and res["fit_s"] > 0
    assert res["likelihood"] == "importance" and res["se_ka"] > 0
