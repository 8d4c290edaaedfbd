"""The parameter table: natural scale, delta-method SEs, CV %, correlations, OFV/BIC."""

import warnings

import numpy as np
import pytest

from sknlme.models import LinearGaussian
from sknlme.population import (
    NLMEPopulationEstimator,
    PopulationFitResult,
    PopulationObjective,
    condition_number,
    estimate_correlation,
    lognormal_cv,
    parameter_table,
    random_startpoints,
    run_multistart,
)
from sknlme.posterior import ExactGaussianPosterior

LOG_CL, OMEGA = np.log(2.0), 0.3


def lognormal_fit(n=200, seed=0):
    """A fit of two parameters, one named on the log scale, from exact draws."""
    rng = np.random.default_rng(seed)
    centre = np.array([LOG_CL, 5.0]) + np.array([OMEGA, 1.0]) * rng.standard_normal((n, 2))
    phi = centre[:, None, :] + 0.01 * rng.standard_normal((n, 40, 2))
    obj = PopulationObjective(phi, np.zeros((n, 40)), ["log_Cl", "V"])
    res = run_multistart(obj, obj.x_names, *obj.bounds, random_startpoints(*obj.bounds, 2, 0))
    best = res.optimize_result[0]
    return PopulationFitResult.from_fit(obj, obj, best, best.fval, res, np.arange(n), 2, 0)


@pytest.fixture(scope="module")
def fit():
    return lognormal_fit()


def test_natural_scale_rows(fit):
    table = parameter_table(fit, error_params=["V"]).set_index("parameter")
    cl = table.loc["log_Cl"]
    assert cl.natural_parameter == "Cl" and np.isnan(cl.rse_percent)  # no RSE of a log value
    assert cl.natural_estimate == pytest.approx(np.exp(cl.estimate))
    assert cl.natural_se == pytest.approx(np.exp(cl.estimate) * cl.se)
    assert cl.natural_rse_percent == pytest.approx(100 * cl.se)
    assert cl.natural_ci_lower == pytest.approx(np.exp(cl.ci_lower))
    assert cl.natural_ci_upper == pytest.approx(np.exp(cl.ci_upper))
    # a natural-scale parameter keeps its RSE; error_params are named residual error
    v = table.loc["V"]
    assert v.kind == "residual error" and v.natural_parameter == "V"
    assert v.rse_percent == pytest.approx(100 * v.se / abs(v.estimate))
    sd = table.loc["SD(log_Cl)"]
    assert sd.natural_parameter == "CV%(Cl)"
    assert sd.natural_estimate == pytest.approx(100 * np.sqrt(np.exp(sd.estimate**2) - 1))
    assert sd.natural_ci_lower < sd.natural_estimate < sd.natural_ci_upper
    # 200 individuals: omega within 4 SE (0.3 / sqrt(400) = 0.015) of the truth
    assert abs(sd.estimate - OMEGA) < 4 * 0.015


def test_delta_method_against_simulation(fit):
    """SDs of exp(beta) and of the CV of the draws of x ~ N(x_hat, cov_x)."""
    table = parameter_table(fit).set_index("parameter")
    rng = np.random.default_rng(1)
    x = rng.multivariate_normal(fit.x, fit.covariance_x, size=20_000)
    names = fit.x_names
    beta = x[:, names.index("log_Cl")]
    omega = np.sqrt(np.exp(x[:, names.index("log_var(log_Cl)")]))
    simulated = {"log_Cl": np.exp(beta).std(), "SD(log_Cl)": lognormal_cv(omega)[0].std()}
    # the SD of 20,000 draws has relative SE 1 / sqrt(40,000) = 0.5 %; the
    # delta method's own error is O(SE^2) relative (SE(log var) = 0.1 here): 3 %
    for name, sd in simulated.items():
        assert table.loc[name, "natural_se"] == pytest.approx(sd, rel=0.03), name


def test_lognormal_cv_derivative():
    cv, d = lognormal_cv(np.array([0.1, 0.5, 1.0]))
    h = 1e-6
    numeric = (lognormal_cv(np.array([0.1, 0.5, 1.0]) + h)[0] - cv) / h
    np.testing.assert_allclose(d, numeric, rtol=1e-4)
    assert lognormal_cv(0.0)[1] == pytest.approx(100.0)  # the limit of the derivative at 0


def test_correlation_and_condition_number(fit):
    table = parameter_table(fit)
    corr = table.attrs["correlation"]
    np.testing.assert_allclose(np.diag(corr), 1.0)
    np.testing.assert_allclose(corr, corr.T)
    w = np.linalg.eigvalsh(corr.to_numpy())
    assert table.attrs["condition_number"] == pytest.approx(w[-1] / w[0])
    assert condition_number(np.array([[1.0, 0.9], [0.9, 1.0]])) == pytest.approx(19.0)


def test_condition_number_without_standard_errors_warns():
    cov = np.array([[1.0, 0.0, 0.0], [0.0, np.nan, 0.0], [0.0, 0.0, 4.0]])
    corr = estimate_correlation(np.where(np.isnan(cov), np.nan, cov), ["a", "b", "c"])
    with pytest.warns(RuntimeWarning, match=r"\['b'\]"):
        assert condition_number(corr) == pytest.approx(1.0)


def test_ofv_and_bic_use_the_number_of_observations():
    model = LinearGaussian(n_params=1, sigma=0.3)
    X, _ = model.simulate(12, random_state=0)  # 12 individuals x 5 times
    pop = NLMEPopulationEstimator(
        ExactGaussianPosterior(model).fit(), n_samples=50, n_starts=2, random_state=0
    ).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        attrs = parameter_table(pop.result_).attrs
    assert attrs["ofv"] == pytest.approx(-2 * pop.loglik_)
    assert attrs["n_observations"] == 60
    # R: BIC(fit) = -2 logLik + k log(nobs), nobs = observations (60), not individuals (12)
    assert attrs["bic"] == pytest.approx(attrs["ofv"] + 2 * np.log(60))
    assert attrs["aic"] == pytest.approx(attrs["ofv"] + 2 * 2)


def _bracket(prof_result, names, name, end):
    """Distance between the two profile points around an interval end (its uncertainty)."""
    j = names.index(name)
    prof = prof_result.profile_result.list[-1][j]
    xs = np.sort(np.asarray(prof.x_path)[j])
    k = np.searchsorted(xs, end)
    return xs[min(k, len(xs) - 1)] - xs[max(k - 1, 0)]


def test_profile_intervals_against_closed_form(fit):
    """Normal centres with draws 0.01 around them: the profile likelihood is known.

    The objective is, up to terms of order w^2 (w = within-individual draw
    variance, ~1e-4), that of n iid normals c_i with variance psi + w. Profiling
    the mean m gives -n/2 log(s2 + (cbar - m)^2) (s2 the MLE variance of the c_i),
    so the 95 % ends are cbar +- sqrt(s2 (exp(q / n) - 1)), q = chi2_1(0.95).
    Profiling v = log psi gives n (u - 1 - log u) = q with u = s2 / (exp(v) + w).
    pyPESTO's ends interpolate the ratio linearly between path points, so each
    must lie within the spacing of the two points around it.
    """
    from scipy.optimize import brentq
    from scipy.stats import chi2

    prof = fit.profile(["log_Cl", "log_var(log_Cl)"])
    table = parameter_table(fit, profile=prof).set_index("parameter")
    rng = np.random.default_rng(0)  # the draws of lognormal_fit(), as it makes them
    centre = np.array([LOG_CL, 5.0]) + np.array([OMEGA, 1.0]) * rng.standard_normal((200, 2))
    phi = centre[:, None, :] + 0.01 * rng.standard_normal((200, 40, 2))
    c = np.asarray(phi)[:, :, 0].mean(axis=1)
    w = np.asarray(phi)[:, :, 0].var(axis=1).mean()
    n, q = len(c), chi2.ppf(0.95, 1)
    s2 = c.var()
    half = np.sqrt(s2 * np.expm1(q / n))
    row = table.loc["log_Cl"]
    names = list(fit.x_names)
    for end, exact in [(row.profile_lower, c.mean() - half), (row.profile_upper, c.mean() + half)]:
        assert abs(end - exact) <= _bracket(prof.result, names, "log_Cl", end) + 1e-9
    assert row.natural_profile_lower == pytest.approx(np.exp(row.profile_lower))

    def lr(v):
        u = s2 / (np.exp(v) + w)
        return n * (u - 1 - np.log(u)) - q

    v_hat = np.log(s2 - w)
    v_ends = [brentq(lr, v_hat - 2, v_hat), brentq(lr, v_hat, v_hat + 2)]
    sd = table.loc["SD(log_Cl)"]
    raw = prof.table.set_index("parameter").loc["log_var(log_Cl)"]
    for end, exact in zip([raw.lower, raw.upper], v_ends, strict=True):
        assert abs(end - exact) <= _bracket(prof.result, names, "log_var(log_Cl)", end) + 1e-9
    # invariance: SD, variance and CV % ends are the log-variance ends transformed
    assert sd.profile_lower == pytest.approx(np.exp(raw.lower / 2))
    assert sd.profile_upper == pytest.approx(np.exp(raw.upper / 2))
    var = table.loc["Var(log_Cl)"]
    assert (var.profile_lower, var.profile_upper) == pytest.approx(np.exp([raw.lower, raw.upper]))
    assert sd.natural_profile_upper == pytest.approx(lognormal_cv(sd.profile_upper)[0])
    # V was not profiled: NaN, as are all profile columns without profiles
    assert np.isnan(table.loc["V", "profile_lower"])
    assert parameter_table(fit)["profile_lower"].isna().all()


def test_profile_table_forms_and_levels(fit):
    from sknlme.population import profile_intervals

    prof = fit.profile(["log_Cl"])
    by_table = parameter_table(fit, profile=prof.table)
    by_result = parameter_table(fit, profile=prof.result)
    np.testing.assert_array_equal(by_table.profile_lower, by_result.profile_lower)
    narrow = profile_intervals(prof.result, fit.x_names, fit.x, 0.5).iloc[0]
    wide = prof.table.iloc[0]
    assert wide.lower < narrow.lower < fit.x[0] < narrow.upper < wide.upper
    with pytest.raises(ValueError, match="not free parameters"):
        parameter_table(fit, profile=prof.table.assign(parameter="CL"))
    with pytest.raises(TypeError, match="profile must be"):
        parameter_table(fit, profile=[1, 2])
