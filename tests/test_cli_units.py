"""``sknlme fit study.csv --model two-compartment-iv``: the shipped broad network, no
training, gives the same estimates for a study in mg, L, h and in ug, mL, min.

The network maps each study onto its training scales (``rescale_units``), so both
files reach the network as the same numbers up to rounding: the amortized fit's fixed
effects agree up to the unit shift (log CL and log Q by log(1000) - log(60), the log
volumes by log(1000), log sigma by 0 as ug/mL = mg/L) to the optimiser's tolerance, and
the SDs too. (Their objectives agree to 2e-6 at shifted points; with 2 starts the two
runs ended in different local optima of this sparse study's amortized likelihood, 8
apart, hence 10 starts. The default importance fit agrees to its stopping rule, see
tests/test_units_equivariance.py.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sknlme.cli import main
from sknlme.data import to_long
from sknlme.datasets import make_population
from sknlme.datasets._pretrained import _shipped_file
from sknlme.models import get_model

pytestmark = pytest.mark.skipif(
    not _shipped_file("two-compartment-iv").is_file(), reason="no shipped network"
)
TRUTH = dict(
    mean=dict(
        log_CL=np.log(5),
        log_V1=np.log(50),
        log_Q=np.log(5),
        log_V2=np.log(100),
        log_sigma=np.log(0.1),
    ),  # fmt: skip
    sd=dict(log_CL=0.3, log_V1=0.25, log_Q=0.0, log_V2=0.0, log_sigma=0.0),
)


def _study(tmp_path):
    X, _ = make_population(get_model("two-compartment-iv"), 30, TRUTH, random_state=3)
    long = to_long(X)
    long["LLOQ"] = float(np.nanquantile(long.loc[long["EVID"] == 0, "DV"], 0.2))  # 20 % BLQ
    other = long.copy()
    other["TIME"] *= 60.0
    other["AMT"] *= 1000.0
    other.loc[other["RATE"] > 0, "RATE"] *= 1000.0 / 60.0
    other[["DUR", "II"]] *= 60.0
    paths = tmp_path / "mg_L_h.csv", tmp_path / "ug_mL_min.csv"
    for frame, path in zip((long, other), paths, strict=True):
        frame.to_csv(path, index=False, na_rep=".")
    return paths


def test_same_estimates_in_both_unit_systems(tmp_path):
    tables = []
    for path in _study(tmp_path):
        out = tmp_path / path.stem
        args = ["fit", str(path), "--model", "two-compartment-iv", "--likelihood", "amortized",
                "--random-effects", "log_CL,log_V1,log_Q,log_V2", "--n-starts", "10",
                "--no-profile", "--out", str(out)]  # fmt: skip
        assert main(args) == 0
        tables.append(pd.read_csv(out / "estimates.csv", index_col="parameter"))
    a, b = tables
    model = get_model("two-compartment-iv")
    names = list(model.param_names)
    shift = model.unit_exponents @ np.log([60.0, 1000.0, 1.0])  # time, amount, conc.
    est = "estimate"
    np.testing.assert_allclose(b.loc[names, est], a.loc[names, est] + shift, atol=1e-3)
    sds = [n for n in a.index if n.startswith("SD(")]
    np.testing.assert_allclose(b.loc[sds, est], a.loc[sds, est], atol=1e-3)
