"""The ``sknlme`` command runs the whole chain and writes its report."""

from pathlib import Path

import pandas as pd

from sknlme.cli import main


def test_demo_writes_report(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["demo", "--out", str(out), "--n-starts", "2", "--no-profile"]) == 0
    # the importance likelihood refines only the best amortized ends: the count says so
    printed = capsys.readouterr().out
    assert "2 starts; " in printed and "refinements on the exact likelihood" in printed
    names = {p.name for p in out.iterdir()}
    assert {
        "estimates.csv",
        "individual_estimates.csv",
        "summary.txt",
        "individual_fits.png",
        "observed_vs_predicted.png",
        "vpc.png",
        "calibration.png",
    } <= names
    table = pd.read_csv(out / "estimates.csv")
    fixed = table[table["kind"] == "fixed effect"].set_index("parameter")["estimate"]
    # A loose sanity band (R nlme: lKe -2.45, lKa 0.47, lCl -3.23); the tight
    # comparison belongs to the validation against R nlme.
    assert abs(fixed["log_Cl"] + 3.23) < 0.3
    assert len(pd.read_csv(out / "individual_estimates.csv")) == 12
    summary = (out / "summary.txt").read_text()
    assert "refinements on the exact likelihood" in summary
    # the pharmacometric tables (issue 14) and the provenance of the fit
    params = pd.read_csv(out / "parameters.csv", index_col=0).set_index("parameter")
    assert params.loc["log_Cl", "natural_parameter"] == "Cl"
    assert params.loc["SD(log_Cl)", "natural_parameter"] == "CV%(Cl)"
    assert params.loc["log_sigma", "kind"] == "residual error"
    assert pd.isna(params.loc["log_Cl", "rse_percent"])  # no RSE of a log-scale value
    obs = pd.read_csv(out / "observations.csv")
    assert list(obs.columns) == ["ID", "TIME", "DV", "PRED", "IPRED", "RES", "IRES",
                                 "IWRES", "WRES", "CWRES", "NPDE"]  # fmt: skip
    assert len(obs) == 132 and obs["NPDE"].notna().all()  # R nlme: 132 observations
    ind = pd.read_csv(out / "individuals.csv", index_col="ID")
    assert len(ind) == 12 and {"Cl", "ETA(log_Cl)", "WT"} <= set(ind.columns)
    shrink = pd.read_csv(out / "shrinkage.csv", index_col=0)
    assert list(shrink.index) == ["ETA(log_ke)", "ETA(log_ka)", "ETA(log_Cl)", "EPS"]
    corr = pd.read_csv(out / "correlation.csv", index_col=0)
    assert corr.shape == (7, 7)  # 4 fixed effects and 3 log-variances
    for text in ("OFV", "condition number", "network_sha256: ", "bayesflow: ", "random_state: 0"):
        assert text in summary, text


def test_train_saves_a_loadable_posterior(tmp_path):
    from sknlme.posterior import AmortizedPosterior

    path = tmp_path / "net.zip"
    args = ["train", "one-compartment-oral", "--out", str(path), "--summary-network", "conv",
            "--hidden-units", "8", "--n-simulations", "300", "--epochs", "1"]  # fmt: skip
    assert main(args) == 0
    post = AmortizedPosterior.load(path)
    assert post.summary_network == "conv" and post.hidden_units == (8,)
    assert post.model.name == "one-compartment-oral" and post.n_simulations_ == 300


def test_bad_data_file_is_one_line_error_with_status_2(tmp_path, capsys):
    path = tmp_path / "study.csv"
    path.write_text("ID,TIME,DV,AMT,EVID\n1,0,.,100,1\n1,1,BLQ,.,0\n")
    assert main(["fit", str(path), "--model", "one-compartment-oral", "--out", ""]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sknlme fit: error: ")
    assert "'BLQ'" in err[0] and "line 3" in err[0]
    assert main(["fit", str(tmp_path / "absent.csv"), "--model", "x", "--out", ""]) == 2
    assert "absent.csv" in capsys.readouterr().err


def test_version(capsys):
    import pytest

    import sknlme

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"sknlme {sknlme.__version__}"


def test_fit_reads_the_covariates_it_uses(tmp_path, capsys):
    from sknlme.datasets import load_theophylline

    path = tmp_path / "theo.csv"
    long = load_theophylline(as_long=True).assign(TAD=lambda d: d["TIME"])  # an extra column
    long.to_csv(path, index=False, na_rep=".")
    args = ["fit", str(path), "--model", "one-compartment-oral", "--covariates", "WT:log_Cl",
            "--likelihood", "amortized", "--n-starts", "2", "--no-profile",
            "--out", ""]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "WT:log_Cl" in printed  # the covariate effect is estimated; TAD is not read


USER_MODEL = Path(__file__).resolve().parents[1] / "examples" / "user_model"


def _mm_study(path):
    """A NONMEM-style CSV of 12 individuals simulated from the example MM model."""
    import sys

    import numpy as np

    sys.path.insert(0, str(USER_MODEL))
    try:
        from mm_model import make_model
    finally:
        sys.path.remove(str(USER_MODEL))
    from sknlme.data import IndividualRecords, make_individuals, to_long

    rng = np.random.default_rng(0)
    times = [0.5, 1.0, 2.0, 4.0, 8.0, 12.0, 24.0]
    recs = [IndividualRecords(times, np.ones(7), [0.0], [float(a)]) for a in [100, 200] * 6]
    design = make_individuals(recs, covariates={"WT": rng.uniform(50, 100, 12).round(1)})
    X, _ = make_model().simulate(design=design, random_state=1)
    to_long(X).assign(OCC=1).to_csv(path, index=False, na_rep=".")  # OCC: an extra column


def test_train_and_fit_a_user_model_on_a_study(tmp_path, monkeypatch, capsys):
    import sys

    from sknlme.posterior import AmortizedPosterior

    study, net = tmp_path / "study.csv", tmp_path / "mm.sknlme"
    _mm_study(study)
    monkeypatch.setattr(sys, "path", list(sys.path))  # load_model adds the working directory
    monkeypatch.chdir(USER_MODEL)
    args = ["train", "mm_model:make_model", "--design", str(study), "--out", str(net),
            "--hidden-units", "8", "--n-simulations", "200", "--epochs", "1"]  # fmt: skip
    assert main(args) == 0
    post = AmortizedPosterior.load(net)  # rebuilt from mm_model:mm_bolus by name
    assert post.model.name == "mm-bolus" and post.model.covariate_names == ("WT",)
    assert post.model.design is None  # the study is not saved; its range is
    assert post.envelope_ is not None
    fit = ["fit", str(study), "--posterior", str(net), "--n-samples", "20", "--n-starts", "2",
           "--fixed", "log_b=-2.3", "--bounds", "log_V=1:5", "--likelihood", "amortized",
           "--no-profile", "--out", ""]  # fmt: skip
    assert main(fit) == 0
    printed = capsys.readouterr().out
    assert "log_Vmax" in printed and "-2.3" in printed  # the estimates, log_b held fixed
    assert main(fit + ["--model", "one-compartment-oral"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not match the saved parameters" in err[0]


def test_bad_fit_options_are_one_line_errors(tmp_path, capsys):
    from sknlme.datasets import load_theophylline

    path = tmp_path / "theo.csv"
    load_theophylline(as_long=True).to_csv(path, index=False, na_rep=".")
    base = ["fit", str(path), "--out", "", "--no-profile"]
    cases = [
        ([], "give --model"),
        (["--model", "one-compartment-oral", "--fixed", "log_ka"], "--fixed: expected NAME=VALUE"),
        (["--model", "one-compartment-oral", "--bounds", "log_ka=3:1"], "LO < HI, got 'log_ka"),
        (["--model", "one-compartment-oral", "--n-samples", "0"], "--n-samples must be positive"),
        (["--model", "no_such_module:Model"], "no pretrained posterior"),
    ]
    for extra, message in cases:
        assert main(base + extra) == 2, extra
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (extra, err)
