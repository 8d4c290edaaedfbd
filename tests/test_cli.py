"""The ``sknlme`` command runs the whole chain and writes its report."""

from pathlib import Path

import pandas as pd
import pytest

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


ROOT = Path(__file__).resolve().parents[1]
WALKTHROUGH = ROOT / "docs" / "user_guide" / "user_models.rst"
TINY_TRAIN = ["--hidden-units", "8", "--n-simulations", "200", "--epochs", "1"]
TINY_FIT = ["--n-samples", "20", "--n-starts", "2", "--likelihood", "amortized", "--no-profile"]


def _code_blocks(language):
    """The ``.. code-block:: language`` blocks of the walkthrough page, dedented."""
    import textwrap

    blocks = []
    for part in WALKTHROUGH.read_text().split(f".. code-block:: {language}\n")[1:]:
        lines = []
        for line in part.splitlines()[1:]:
            if line and not line.startswith("   "):
                break
            lines.append(line)
        blocks.append(textwrap.dedent("\n".join(lines)).strip())
    return blocks


def _walkthrough_folder(tmp_path, monkeypatch):
    """A folder holding the page's model file and the study its first block writes."""
    import shutil
    import sys

    shutil.copy(ROOT / "examples" / "user_model" / "mm_model.py", tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    exec(_code_blocks("python")[0], {})  # the study, as written
    sys.path.remove(str(tmp_path))  # the CLI finds mm_model in the working directory
    monkeypatch.delitem(sys.modules, "mm_model")
    return tmp_path


def test_walkthrough_commands_train_and_fit_a_user_model(tmp_path, monkeypatch, capsys):
    import shlex

    from sknlme.posterior import AmortizedPosterior

    _walkthrough_folder(tmp_path, monkeypatch)
    train, fit = (shlex.split(c)[1:] for c in _code_blocks("bash")[0].splitlines())
    assert train[0] == "train" and fit[0] == "fit"
    assert main(train + TINY_TRAIN) == 0
    post = AmortizedPosterior.load("mm.sknlme")  # rebuilt from mm_model:mm_bolus by name
    assert post.model.name == "mm-bolus" and post.model.covariate_names == ("WT",)
    assert post.model.design is None  # the study is not saved; its range is
    assert post.envelope_ is not None and post.n_simulations_ == 200
    extra = ["--fixed", "log_b=-2.3", "--bounds", "log_V=1:5"]
    assert main(fit + TINY_FIT + extra) == 0
    printed = capsys.readouterr().out
    assert "log_Vmax" in printed and "-2.3" in printed  # the estimates, log_b held fixed
    assert (tmp_path / "mm-report").is_dir()
    assert main(fit + TINY_FIT + ["--out", "", "--model", "one-compartment-oral"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not match the saved parameters" in err[0]


@pytest.mark.slow
def test_walkthrough_python_block_runs(tmp_path, monkeypatch):
    import sys

    _walkthrough_folder(tmp_path, monkeypatch)
    code = _code_blocks("python")[1]
    for full, tiny in (
        ("n_simulations=20_000", "n_simulations=200, epochs=1, hidden_units=(8,)"),
        ("n_starts=10", "n_starts=2, n_samples=20, likelihood='amortized'"),
    ):
        assert full in code
        code = code.replace(full, tiny)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    namespace = {}
    exec(code, namespace)
    assert "log_Vmax" in set(namespace["est"].summary()["parameter"])


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
