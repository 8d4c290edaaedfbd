"""Diagnostic figures: each is built on a fit, saved to PNG and opened again.

Theophylline with the shipped network (12 individuals, 132 observations) for
the pharmacometric figures; ``LinearGaussian`` with the exact posterior for the
fast ones.
"""

import dataclasses
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from sklearn.frozen import FrozenEstimator  # noqa: E402

from sknlme.datasets import load_theophylline, pretrained  # noqa: E402
from sknlme.models import LinearCompartmental, LinearGaussian  # noqa: E402
from sknlme.plotting import (  # noqa: E402
    axis_label,
    binned_median_smoother,
    nominal_time_bins,
    plot_eta_covariates,
    plot_gof,
    plot_individual_fits,
    plot_vpc,
)
from sknlme.population import NLMEPopulationEstimator  # noqa: E402
from sknlme.posterior import ExactGaussianPosterior  # noqa: E402

UNITS = {"time": "h", "conc": "mg/L"}


@pytest.fixture(scope="module")
def theo():
    X = load_theophylline()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pop = NLMEPopulationEstimator(
            FrozenEstimator(pretrained("one-compartment-oral")),
            n_samples=100,
            n_starts=2,
            random_state=0,
        ).fit(X)
        obs = pop.observation_table(X, n_simulations=200, random_state=0)
    return X, pop, obs


@pytest.fixture(scope="module")
def linear():
    model = LinearGaussian(n_params=2, sigma=0.2)
    X, _ = model.simulate(30, random_state=0)
    pop = NLMEPopulationEstimator(
        ExactGaussianPosterior(model).fit(), n_samples=50, n_starts=2, random_state=0
    ).fit(X)
    return model, X, pop


def _reopen(fig, path):
    """Save to PNG, close, read back: the image's pixel size and that it is not blank."""
    fig.savefig(path, dpi=60)
    plt.close(fig)
    image = plt.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image[..., :3].std() > 0.05  # not a blank canvas
    return image


def _drawn(ax):
    return len(ax.lines) + len(ax.collections) + len(ax.patches) > 0


def test_nominal_bins_of_theophylline_separate_12_and_24_h():
    X = load_theophylline()
    t = np.concatenate([r.times[np.isfinite(r.values).any(1)] for r in X["records"]])
    labels = nominal_time_bins(t, 11)
    # the design's 11 nominal times: 12 samples each (measured on theophylline: 12-13 per bin)
    counts = np.bincount(labels)
    assert len(counts) == 11 and counts.min() >= 11 and counts.max() <= 13
    assert labels[np.argmin(np.abs(t - 12.0))] != labels[np.argmin(np.abs(t - 24.0))]
    late = labels == labels.max()
    assert t[late].min() > 20  # the last bin holds the 24 h samples only
    # bins ordered in time, not overlapping
    highs = [t[labels == b].max() for b in range(11)]
    lows = [t[labels == b].min() for b in range(11)]
    assert all(h < lo for h, lo in zip(highs[:-1], lows[1:], strict=True))


def test_nominal_bins_checks():
    assert nominal_time_bins([1.0, 1.0, 2.0], 5).tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="times"):
        nominal_time_bins([[1.0]], 2)
    with pytest.raises(ValueError, match="n_bins"):
        nominal_time_bins([1.0], 0)


def test_smoother_and_labels():
    xs, ys = binned_median_smoother([1, 2, np.nan], [1, 2, 3])
    assert len(xs) == 0
    assert axis_label("time", "time") == "time (no units given)"
    with pytest.raises(ValueError, match="kind"):
        axis_label("x", "dose")


def test_gof_panel(theo, tmp_path):
    _, _, obs = theo
    fig = plot_gof(obs, units=UNITS)
    axes = fig.axes
    assert len(axes) == 8 and all(_drawn(ax) for ax in axes)
    assert axes[0].get_xlabel() == "PRED (mg/L)" and axes[4].get_xlabel() == "time (h)"
    assert axes[2].get_xscale() == "log" and axes[3].get_yscale() == "log"
    # DV vs PRED: points, identity, smoother
    assert len(axes[0].lines) == 3
    _reopen(fig, tmp_path / "gof.png")


def test_gof_errors_name_the_column(theo):
    _, _, obs = theo
    with pytest.raises(ValueError, match="CWRES"):
        plot_gof(obs.drop(columns="CWRES"))
    with pytest.raises(TypeError, match="observation_table"):
        plot_gof(obs.to_numpy())
    fig = plot_gof(obs.drop(columns="NPDE"))
    assert "not computed" in fig.axes[7].get_title()
    plt.close(fig)


def test_individual_fits_with_pred_and_units(theo, tmp_path):
    X, pop, _ = theo
    model = pop.posterior.model
    fig = plot_individual_fits(
        model,
        X,
        pop.predict(X),
        population_phi=pop.fixed_effects_.to_numpy(),
        units=UNITS,
        log_y=True,
    )
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 12
    assert all(len(ax.lines) == 3 for ax in visible)  # observed, IPRED, PRED
    assert visible[0].get_yscale() == "log"
    assert visible[0].get_ylabel() == "concentration (mg/L)"
    _reopen(fig, tmp_path / "fits.png")


def _vpc_bands(ax):
    return [c for c in ax.collections if c.get_label() and "simulated" in c.get_label()]


def test_vpc_nominal_bins_clipped_legend_once(theo, tmp_path):
    X, pop, _ = theo
    model = pop.posterior.model
    fig = plot_vpc(
        model,
        X,
        pop.fixed_effects_.to_numpy(),
        pop.covariance_.to_numpy(),
        n_replicates=100,
        units=UNITS,
        random_state=0,
    )
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(labels) == len(set(labels)) == 5
    median = next(ln for ln in ax.lines if ln.get_label() == "observed median")
    x = median.get_xdata()
    assert len(x) == 11  # one point per nominal time
    assert 23 < x[-1] < 25  # the last bin is drawn at its median time (24 h)
    for band in ax.collections[1:]:
        path = band.get_paths()[0].vertices
        assert path[:, 1].min() >= 0.0  # lower band clipped at 0
    # observed 95 % quantile of the last bin no higher than the data there (issue: 5.7 > 3.3)
    upper = [ln for ln in ax.lines if ln.get_label() == "observed outer quantiles"][0]
    assert upper.get_ydata()[-1] <= 3.3 + 1e-9
    _reopen(fig, tmp_path / "vpc.png")


def test_pcvpc_stratified(theo, tmp_path):
    X, pop, _ = theo
    model = pop.posterior.model
    fig = plot_vpc(
        model,
        X,
        pop.fixed_effects_.to_numpy(),
        pop.covariance_.to_numpy(),
        n_replicates=50,
        pred_corrected=True,
        stratify="WT",
        random_state=0,
    )
    assert len(fig.axes) == 2
    assert all("Prediction-corrected" in ax.get_title() for ax in fig.axes)
    assert "WT <" in fig.axes[0].get_title() and "WT ≥" in fig.axes[1].get_title()
    assert fig.axes[0].get_legend() is not None and fig.axes[1].get_legend() is None
    _reopen(fig, tmp_path / "pcvpc.png")
    with pytest.raises(ValueError, match="stratify"):
        plot_vpc(
            model,
            X,
            pop.fixed_effects_.to_numpy(),
            pop.covariance_.to_numpy(),
            n_replicates=5,
            stratify="AGE",
        )


def test_vpc_censoring_aware(tmp_path):
    """Theophylline censored below 1 mg/L (19 of 132 observations), a model with M3 censoring."""
    model = LinearCompartmental(1, "oral")
    X = load_theophylline()
    lloq = 1.0
    records = []
    for r in X["records"]:
        cens = np.isfinite(r.values) & (r.values < lloq)
        records.append(dataclasses.replace(r, values=np.where(cens, lloq, r.values), censored=cens))
    X_c = X.assign(records=records)
    mean = np.log([0.04, 0.5, 1.5, 0.7])  # CL L/h/kg, V L/kg, ka 1/h, sigma mg/L
    fig = plot_vpc(
        model,
        X_c,
        mean,
        np.diag([0.05, 0.02, 0.3, 1e-6]),
        n_replicates=50,
        random_state=0,
        units=UNITS,
    )
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "LLOQ" in labels and "censored (at LLOQ)" in labels
    lower = [ln for ln in ax.lines if ln.get_label() == "observed outer quantiles"][0]
    y = np.asarray(lower.get_ydata(), dtype=float)
    assert np.isnan(y).any()  # the 5 % quantile at 0 h and 0.25 h lies among censored values
    assert np.all(np.isnan(y) | (y > lloq))  # no quantile drawn inside the censored region
    assert len(fig.axes) == 2  # the VPC and, below it, the fraction BLQ per bin
    _reopen(fig, tmp_path / "vpc_cens.png")


def _hand_quantile(values, censored, q):
    """numpy's linear quantile with censored values ranked lowest; NaN if one is used."""
    order = np.r_[np.full(censored.sum(), -np.inf), np.sort(values[~censored])]
    h = (len(order) - 1) * q
    lo, frac = int(np.floor(h)), h - np.floor(h)
    used = [lo] + ([lo + 1] if frac > 0 else [])
    if np.isinf(order[used]).any():
        return np.nan
    return order[lo] + frac * (order[used[-1]] - order[lo])


def test_pcvpc_censoring_aware_against_hand_computation(tmp_path):
    """pcVPC of theophylline censored below 2 mg/L: quantiles and fraction BLQ by hand."""
    model = LinearCompartmental(1, "oral")
    X = load_theophylline()
    lloq = 2.0
    records = []
    for r in X["records"]:
        cens = np.isfinite(r.values) & (r.values < lloq)
        records.append(dataclasses.replace(r, values=np.where(cens, lloq, r.values), censored=cens))
    X_c = X.assign(records=records)
    before = [r.values.copy() for r in X_c["records"]]
    mean = np.log([0.04, 0.5, 1.5, 0.7])
    q = (0.05, 0.5, 0.95)
    fig = plot_vpc(model, X_c, mean, np.diag([0.05, 0.02, 0.3, 1e-6]), n_replicates=40,
                   n_bins=6, quantiles=q, pred_corrected=True, random_state=0)  # fmt: skip
    assert all(np.array_equal(a, r.values) for a, r in zip(before, X_c["records"], strict=True))
    path = tmp_path / "pcvpc_cens.png"
    fig.savefig(path)
    assert plt.imread(path).shape[0] > 0  # the image opens
    ax, blq_ax = fig.axes[0], fig.axes[1]
    assert "Prediction-corrected" in ax.get_title() and blq_ax.get_ylabel() == "fraction BLQ"

    # the hand computation: nominal bins, PRED_bin / PRED on quantified values only
    study = model.prepare(X_c, require_values=False)
    pad = study.padded
    obs, m = pad.values[..., 0], pad.obs_mask & np.isfinite(pad.values[..., 0])
    cens = pad.censored[..., 0] & m
    pred = model.predict(np.tile(mean, (len(X_c), 1)), study)[..., 0]
    labels = nominal_time_bins(pad.times[m], 6)
    median_q, lower_q, frac = [], [], []
    for b in range(6):
        v, c, p = obs[m][labels == b], cens[m][labels == b], pred[m][labels == b]
        pb = np.median(p)  # PRED 0 (dose time) in a bin of PRED 0: factor 1, else dropped
        factor = np.where(p > 0, pb / np.where(p > 0, p, 1), 1.0 if pb == 0 else np.nan)
        v, c = v[np.isfinite(factor)], c[np.isfinite(factor)]
        corrected = v * factor[np.isfinite(factor)]
        median_q.append(_hand_quantile(corrected, c, 0.5))
        lower_q.append(_hand_quantile(corrected, c, 0.05))
        frac.append(c.mean())
    lines = {ln.get_label(): ln for ln in ax.lines}
    np.testing.assert_allclose(lines["observed median"].get_ydata(), median_q, rtol=1e-12)
    drawn_lower = [ln for ln in ax.lines if ln.get_label() == "observed outer quantiles"][0]
    np.testing.assert_allclose(drawn_lower.get_ydata(), lower_q, rtol=1e-12)
    # 0 h and late bins are mostly BLQ: their 5 % quantiles are not identifiable
    assert np.isnan(lower_q).sum() >= 2 and not np.isnan(median_q[2])
    observed_blq = next(ln for ln in blq_ax.lines if ln.get_label() == "observed fraction BLQ")
    np.testing.assert_allclose(observed_blq.get_ydata(), frac, rtol=1e-12)
    assert "LLOQ" not in [t.get_text() for t in ax.get_legend().get_texts()]
    plt.close(fig)


def test_eta_covariates(theo, tmp_path):
    X, pop, _ = theo
    table = pop.individual_table(X)
    fig = plot_eta_covariates(table)
    etas = [c for c in table.columns if c.startswith("ETA(")]
    assert len(fig.axes) == len(etas) * 2  # WT and DOSE
    assert {ax.get_xlabel() for ax in fig.axes} == {"WT", "DOSE"}
    assert all(_drawn(ax) for ax in fig.axes)
    _reopen(fig, tmp_path / "eta.png")
    with pytest.raises(ValueError, match="AGE"):
        plot_eta_covariates(table, ["AGE"])
    with pytest.raises(ValueError, match="no covariates"):
        plot_eta_covariates(pd.DataFrame({"theta0": [1.0], "ETA(theta0)": [0.0]}))


def test_gof_on_linear_gaussian(linear, tmp_path):
    _, X, pop = linear
    fig = plot_gof(pop.observation_table(X, n_simulations=100, random_state=0))
    assert fig.axes[0].get_ylabel() == "DV (no units given)"
    assert all(_drawn(ax) for ax in fig.axes)
    _reopen(fig, tmp_path / "gof_linear.png")


def test_report_writes_the_figures(theo, tmp_path):
    from sknlme._report import write_report

    X, pop, _ = theo
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        files = write_report(
            pop, X, tmp_path, profile=False, calibration=False, n_simulations=100, units=UNITS
        )
    names = {f.name for f in files}
    for name in ("gof.png", "individual_fits.png", "vpc.png", "pcvpc.png", "eta_covariates.png"):
        assert name in names, name
        image = plt.imread(tmp_path / name)
        assert image.shape[0] > 200 and image[..., :3].std() > 0.05


def test_profiles_on_the_sd_scale(linear, tmp_path):
    from sknlme.plotting import plot_profiles

    _, _, pop = linear
    table = pop.profile(params=["log_var(theta0)"])
    fig = plot_profiles(pop)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "omega(theta0) (SD)"
    x = ax.lines[0].get_xdata()
    assert (x > 0).all()
    # the interval's ends, mapped to SDs, lie on the drawn axis
    row = table.set_index("parameter").loc["log_var(theta0)"]
    assert x.min() <= np.exp(row["lower"] / 2) + 1e-9 and np.exp(row["upper"] / 2) <= x.max() + 1e-9
    fig_log = plot_profiles(pop, sd_scale=False)
    assert fig_log.axes[0].get_xlabel() == "log_var(theta0)"
    plt.close(fig_log)
    _reopen(fig, tmp_path / "profiles.png")


def test_report_parameters_csv_carries_the_profile_intervals(linear, tmp_path):
    from sknlme._report import write_report

    _, X, pop = linear
    write_report(pop, X, tmp_path, profile=True, calibration=False, n_simulations=50)
    params = pd.read_csv(tmp_path / "parameters.csv", index_col=0).set_index("parameter")
    prof = pd.read_csv(tmp_path / "profiles.csv", index_col=0).set_index("parameter")
    for p in ("theta0", "theta1"):
        assert params.loc[p, "profile_lower"] == pytest.approx(prof.loc[p, "lower"])
        assert params.loc[p, "profile_upper"] == pytest.approx(prof.loc[p, "upper"])
        sd = params.loc[f"SD({p})"]
        ends = np.exp(prof.loc[f"log_var({p})", ["lower", "upper"]].to_numpy(float) / 2)
        assert [sd.profile_lower, sd.profile_upper] == pytest.approx(ends)
    assert "natural_profile_lower" in (tmp_path / "summary.txt").read_text()
