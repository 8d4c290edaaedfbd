"""Unit- and dose-level equivariance: unit exponents, rescaling posteriors, population fits."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sknlme.data import IndividualRecords, make_individuals
from sknlme.models import LinearCompartmental, LinearGaussian, OneCompartmentOral
from sknlme.population import (
    ImportanceObjective,
    NLMEPopulationEstimator,
    PopulationObjective,
    amortized_offsets,
)
from sknlme.posterior import AmortizedPosterior, StudyBoundPosterior, study_scales

# mg, L, h -> ug, mL, min: times x 60, doses x 1000, concentrations (mg/L = ug/mL) x 1
MIN_UG_ML = (60.0, 1000.0, 1.0)


def convert(X, a_t, a_d, a_c):
    """The individuals table ``X`` with times x a_t, doses x a_d, values x a_c."""
    out = X.copy()
    out["records"] = [
        dataclasses.replace(
            r,
            times=r.times * a_t,
            values=r.values * a_c,
            dose_times=r.dose_times * a_t,
            dose_amounts=r.dose_amounts * a_d,
            dose_durations=r.dose_durations * a_t,
            dose_ii=r.dose_ii * a_t,
        )
        for r in X["records"]
    ]
    return out


def _design(route, ss, infusion):
    times = np.array([0.5, 1.0, 2.0, 5.0, 11.0, 13.0, 20.0, 30.0])
    dur = [1.5 if infusion else 0.0] * 2
    cmt = [2 if (infusion and route == "oral") else 0] * 2
    rec = IndividualRecords(
        times, np.ones(times.size), [0.0, 12.0], [100.0, 50.0],
        dose_durations=dur, dose_cmt=cmt, dose_ss=[int(ss), 0], dose_ii=[12.0 if ss else 0.0, 0.0],
    )  # fmt: skip
    return make_individuals([rec])


# ------------------------------------------------------------ (a) unit exponents
@settings(max_examples=25, deadline=None)
@given(
    ncomp=st.sampled_from([1, 2, 3]),
    route=st.sampled_from(["iv", "oral"]),
    ss=st.booleans(),
    infusion=st.booleans(),
    lag=st.booleans(),
    log_a=st.tuples(*[st.floats(-4.0, 4.0)] * 3),
    seed=st.integers(0, 2**16),
)
def test_linear_compartmental_predictions_follow_unit_exponents(
    ncomp, route, ss, infusion, lag, log_a, seed
):
    lag = lag and route == "oral"
    model = LinearCompartmental(ncomp, route, lag=lag, bioavailability=route == "oral")
    X = _design(route, ss, infusion)
    a = np.exp(log_a)
    phi = model.sample_prior(1, random_state=seed)
    E = model.unit_exponents
    assert E.shape == (model.n_params, 3)
    pred = model.predict(phi, X)
    moved = model.predict(phi + E @ np.log(a), convert(X, *a))
    # pure rescaling of the same closed forms: equal up to rounding (1e-9 relative)
    np.testing.assert_allclose(moved, pred * a[2], rtol=1e-9, atol=1e-12 * pred.max() * a[2])


def test_error_parameters_scale_with_concentration_only():
    for error, expected in [("additive", [[0, 0, 1]]), ("proportional", [[0, 0, 0]]),
                            ("combined", [[0, 0, 1], [0, 0, 0]])]:  # fmt: skip
        model = LinearCompartmental(2, "iv", error=error, covariate_model={
            "log_CL": [("WT", "power", 70.0, None)]})  # fmt: skip
        E = model.unit_exponents
        assert E[model.param_names.index("log_CL_WT")].tolist() == [0, 0, 0]
        assert E[-len(expected) :].tolist() == expected
    assert OneCompartmentOral().unit_exponents[2].tolist() == [-1, 1, -1]  # SSfol Cl, L/h
    assert LinearGaussian().unit_exponents is None


def test_oral1c_predictions_follow_unit_exponents():
    model = OneCompartmentOral()
    X, phi = model.simulate(3, random_state=0)
    a = np.array([60.0, 1e3, 1e-2])
    pred = model.predict(phi.to_numpy(), X)
    moved = model.predict(phi.to_numpy() + model.unit_exponents @ np.log(a), convert(X, *a))
    np.testing.assert_allclose(moved, pred * a[2], rtol=1e-9)


def test_study_scales_are_homogeneous_and_named_errors():
    model = LinearCompartmental(2, "iv")
    X, _ = model.simulate(10, random_state=0)
    s = study_scales(model.prepare(X).padded)
    s2 = study_scales(model.prepare(convert(X, 60.0, 1e3, 1e3)).padded)
    np.testing.assert_allclose(s2, s * [60.0, 1e3, 1e3], rtol=1e-12)
    rec = IndividualRecords([1.0], [np.nan], [0.0], [0.0])
    with pytest.raises(ValueError, match="amount"):
        study_scales(model.prepare(make_individuals([rec]), require_values=False).padded)


def test_rescale_units_needs_unit_exponents():
    post = AmortizedPosterior(LinearGaussian(), rescale_units=True, n_simulations=64, epochs=1)
    with pytest.raises(ValueError, match="unit_exponents"):
        post.fit()


# ------------------------------------------------------- (b) a rescaling network
@pytest.fixture(scope="module")
def rescaling():
    model = LinearCompartmental(2, "iv")
    post = AmortizedPosterior(
        model, hidden_units=(16,), flow_depth=2, n_simulations=512, epochs=2,
        rescale_units=True, censoring="random", random_state=0,
    ).fit()  # fmt: skip
    X, _ = model.simulate(12, random_state=1)
    return model, post, X


def test_training_scales_and_censoring(rescaling):
    model, post, _ = rescaling
    assert post.unit_scales_.shape == (3,) and np.all(post.unit_scales_ > 0)
    assert post.encoder_.censored_channel  # censoring="random" censored some simulations


def test_draws_and_density_equivariant(rescaling):
    model, post, X = rescaling
    Y = convert(X, *MIN_UG_ML)
    shift = model.unit_exponents @ np.log(MIN_UG_ML)
    a, b = post.sample(X, 30, random_state=3), post.sample(Y, 30, random_state=3)
    # float32 draws of size ~5: rounding 5e-7; the mapped inputs differ by ~1e-16 relative
    np.testing.assert_allclose(b, a + shift, atol=5e-6)
    np.testing.assert_allclose(post.log_prob(Y, a + shift), post.log_prob(X, a), atol=1e-4)
    assert (post.check_envelope(Y)["reason"] == post.check_envelope(X)["reason"]).all()


def test_converted_study_not_flagged_while_plain_network_flags_it(rescaling):
    model, post, X = rescaling
    Y = convert(X, *MIN_UG_ML)
    inside = post.check_envelope(X)["reason"] == ""
    assert (post.check_envelope(Y)["reason"][inside] == "").all()
    plain = post.set_params(rescale_units=False)
    try:
        assert (plain.check_envelope(Y)["reason"] != "").all()
    finally:
        post.set_params(rescale_units=True)


def test_bound_posterior_keeps_one_mapping(rescaling):
    model, post, X = rescaling
    Y = convert(X, *MIN_UG_ML)
    bound = post.for_study(Y)
    assert isinstance(bound, StudyBoundPosterior) and bound.for_study(X) is bound
    shift = model.unit_exponents @ np.log(MIN_UG_ML)
    # the training prior in each study's units: shifted by the unit change between them
    prior_x = post.for_study(X).model
    np.testing.assert_allclose(bound.model.prior_mean, prior_x.prior_mean + shift, atol=1e-9)
    np.testing.assert_array_equal(bound.model.prior_cov, model.prior_cov)
    # a subset of the study: the bound scales, hence the same draws as in the whole study
    whole = bound.sample(Y, 10, random_state=0)
    np.testing.assert_array_equal(bound.sample(Y.iloc[[2, 5]], 10, random_state=0), whole[[2, 5]])
    np.testing.assert_allclose(whole, post.sample(Y, 10, random_state=0), atol=0)
    assert bound.transform(Y).shape == (12, post.n_samples, model.n_params)
    assert bound.log_prob(Y, whole).shape == (12, 10)


# ------------------------------------------------------------ (c) population fits
# min, ug, ug/L: every unit changes, and a_c != 1 shows the Jacobian of the data
UNITS = (60.0, 1000.0, 1000.0)


@pytest.fixture(scope="module")
def study(rescaling):
    """Ten individuals with one dose level (inside the training envelope once mapped)."""
    model = rescaling[0]
    times = np.array([0.5, 1.0, 2.0, 4.0, 8.0, 12.5, 16.0, 24.0])
    recs = [IndividualRecords(times, np.ones(8), [0.0, 12.0], [100.0, 100.0])] * 10
    X, _ = model.simulate(design=make_individuals(recs), random_state=2)
    return X, convert(X, *UNITS)


@pytest.fixture(scope="module")
def identified_study(rescaling):
    """Twenty individuals sampled to 72 h, their parameters drawn as the model says.

    Around the prior mean with SD 0.25, one residual SD. ``study``'s come from the
    training prior itself (SD 1 on every log scale, the residual SD's too), and its 8
    samples to 24 h leave CL, Q and V2 undetermined: there the exact likelihood rose
    along a ridge (SD(log CL) 9-12, 5 above where the default fit stopped before its
    conditional-mode proposals followed the parameters without random effect), and
    where a fit stops is not determined by the data, in any unit system. Sampled to
    24 h, these twenty still left a ridge in CL-Q-V2 (seeds 0-2: log-likelihoods
    125.7-126.3 at log CL 0.5-1.1, the truth's mean 1.72); to 72 h, seeds 0-2 agree to
    0.02 in log-likelihood and 0.03 in log V2, log CL 1.78 (SE 0.044).
    """
    model = rescaling[0]
    times = np.array([0.25, 0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 12.5, 16.0, 24.0, 36.0, 48.0, 72.0])
    recs = [IndividualRecords(times, np.ones(13), [0.0, 12.0], [100.0, 100.0])] * 20
    phi = model.prior_mean + 0.25 * np.random.default_rng(2).normal(size=(20, model.n_params))
    phi[:, model.param_names.index("log_sigma")] = model.prior_mean[-1]
    X, _ = model.simulate(design=make_individuals(recs), phi=phi, random_state=2)
    return X, convert(X, *UNITS)


def _fit(post, X, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return NLMEPopulationEstimator(post, n_samples=30, n_starts=2, random_state=0,
                                       **kw).fit(X)  # fmt: skip


def test_amortized_population_fit_equivariant(rescaling, study):
    model, post, _ = rescaling
    X, Y = study
    shift = model.unit_exponents @ np.log(UNITS)
    a, b = _fit(post, X, likelihood="amortized"), _fit(post, Y, likelihood="amortized")
    # draws agree to float32 rounding (~1e-7 of values ~10): the optimum moves by far less
    # than L-BFGS-B's stopping tolerance (gtol 1e-7 on a curvature ~1e-2: ~1e-5)
    np.testing.assert_allclose(b.fixed_effects_, a.fixed_effects_ + shift, atol=1e-4)
    np.testing.assert_allclose(b.random_effects_, a.random_effects_, atol=1e-4)
    # the amortized likelihood has no data density (prior and population shift alike)
    assert b.loglik_ == pytest.approx(a.loglik_, abs=1e-4)


def test_importance_objective_equivariant(rescaling, study):
    """The exact-likelihood objective of both unit systems agrees up to the shift.

    Data values x a_c divide every observation's density by a_c: the negative
    log-likelihood grows by ``n_obs log(a_c)``.
    """
    model, post, _ = rescaling
    shift = model.unit_exponents @ np.log(UNITS)
    values = []
    for k, data in enumerate(study):
        bound = post.for_study(data)
        st = bound.model.prepare(data)
        draws = bound.sample(st, 30, random_state=0)
        offsets = amortized_offsets(draws, prior=bound.model.prior)
        base = PopulationObjective(draws, offsets, list(model.param_names),
                                   random_effects=list(model.structural_params))  # fmt: skip
        obj = ImportanceObjective(base, bound.model, st, 50, random_state=0)
        if k == 0:  # a plausible point in the first study's units, the same in the second's
            means = draws.mean(1).astype(float)
            x = np.r_[means.mean(0), np.log(means.var(0)[:4] + 0.01)]
        values.append(obj(np.r_[x[:5] + k * shift, x[5:]]))
    n_obs = sum(r.n_obs for r in study[0]["records"])
    # float32 draws: relative rounding ~1e-7 of terms summing to ~1e3
    assert values[1] == pytest.approx(values[0] + n_obs * np.log(UNITS[2]), abs=1e-3)


def test_default_fit_equivariant(rescaling, identified_study):
    """The default fit (importance refinement) of both unit systems agrees up to the shift.

    The objectives agree to rounding (test above), the trust boxes and Taylor steps are
    absolute; what differs is where the optimisers stop (L-BFGS-B's tolerances are
    relative to |f|, which moves by n_obs log(a_c)). The refinement ends when two
    re-centrings lower the value by less than FTOL = 1e-3 each; at a quadratic maximum
    that leaves an estimate undetermined by sqrt(2 FTOL) SE = 0.045 SE, but along a
    crawl (a variance near 0, as here the variance of log V2) it can stop farther out:
    measured 0.27 SE for log sigma, so the bound is 0.5 SE where the SE is finite (the
    peripheral parameters of this tiny study have none). Both are maxima to the same
    value: the keyed re-scoring draws give log-likelihoods within 0.05.
    """
    model, post, _ = rescaling
    X, Y = identified_study
    shift = model.unit_exponents @ np.log(UNITS)
    a, b = _fit(post, X), _fit(post, Y)
    assert a.likelihood_ == b.likelihood_ == "importance"
    se = a.standard_errors_[a.fixed_effects_.index].to_numpy()
    gap = (b.fixed_effects_ - a.fixed_effects_ - shift).to_numpy() / se
    assert np.all(np.abs(gap[np.isfinite(gap)]) < 0.5), gap
    sd_se = a.standard_errors_[[f"log_var({p})" for p in a.random_effects_.index]]
    sd_gap = 2 * (np.log(b.random_effects_) - np.log(a.random_effects_)) / sd_se.to_numpy()
    assert np.all(np.abs(sd_gap[np.isfinite(sd_gap)]) < 0.5), sd_gap
    n_obs = sum(r.n_obs for r in X["records"])
    assert b.loglik_ == pytest.approx(a.loglik_ - n_obs * np.log(UNITS[2]), abs=0.05)
    assert b.predict(Y).shape == (len(Y), model.n_params)


def test_default_fit_on_a_ridge_warns(rescaling, study):
    """``study`` (parameters from the training prior, 8 samples to 24 h) has its exact
    likelihood rising along a ridge (see ``identified_study``): in mg/L/h the polish
    after new conditional-mode proposals finds no fixed point (30 re-centrings at the
    trust box's edge), and the fit keeps the previous polish's end, saying so."""
    X, _ = study
    with pytest.warns(RuntimeWarning, match="did not settle after new conditional-mode"):
        NLMEPopulationEstimator(rescaling[1], n_samples=30, n_starts=2, random_state=0).fit(X)


# ------------------------------------------------------------ (d) save and load
def test_save_load_keeps_rescaling(rescaling, tmp_path):
    model, post, X = rescaling
    path = tmp_path / "post.zip"
    post.save(path)
    again = AmortizedPosterior.load(path)
    assert again.rescale_units
    np.testing.assert_array_equal(again.unit_scales_, post.unit_scales_)
    Y = convert(X, *MIN_UG_ML)
    np.testing.assert_array_equal(
        again.sample(Y, 5, random_state=1), post.sample(Y, 5, random_state=1)
    )


# ------------------------------------------ (c) a user's model declares its exponents
def iv_bolus(phi, t, dose_times, dose_amounts):
    """``sum_doses A / V exp(-CL / V (t - t_d))`` (one compartment, IV bolus)."""
    cl, v = np.exp(phi[:, :1]), np.exp(phi[:, 1:2])
    dt = t[:, :, None] - dose_times[:, None, :]
    decay = np.exp(-(cl / v)[..., None] * np.maximum(dt, 0.0)) * (dt >= 0)
    return (dose_amounts[:, None, :] / v[..., None] * decay).sum(-1)


def test_function_model_unit_exponents_rescale_a_network():
    """A FunctionModel with declared exponents is equivariant, and a rescaling network
    trained on it maps another unit system onto its scales (draws shifted exactly)."""
    from sknlme.models import FunctionModel

    exponents = {"log_CL": [-1, 1, -1], "log_V": [0, 1, -1], "log_sigma": [0, 0, 1]}
    model = FunctionModel(
        iv_bolus, ["log_CL", "log_V"], [np.log(5), np.log(50), np.log(0.1)], [0.3, 0.3, 0.2],
        times=[0.5, 1, 2, 4, 8, 12], doses=([0.0, 6.0], [100.0, 100.0]),
        unit_exponents=exponents,
    )  # fmt: skip
    assert model.get_config()["unit_exponents"] == model.unit_exponents.tolist()
    X, phi = model.simulate(6, random_state=0)
    Y = convert(X, *MIN_UG_ML)
    shift = model.unit_exponents @ np.log(MIN_UG_ML)
    pred_x = model.predict(phi.to_numpy(), X)
    pred_y = model.predict(phi.to_numpy() + shift, Y)
    np.testing.assert_allclose(pred_y, pred_x * MIN_UG_ML[2], rtol=1e-10)
    post = AmortizedPosterior(
        model, hidden_units=(16,), flow_depth=2, n_simulations=256, epochs=1,
        rescale_units=True, random_state=0,
    ).fit()  # fmt: skip
    a, b = post.sample(X, 20, random_state=1), post.sample(Y, 20, random_state=1)
    np.testing.assert_allclose(b, a + shift, atol=5e-6)  # float32 draws, as above
    with pytest.raises(ValueError, match="unit_exponents must be finite, of shape"):
        FunctionModel(iv_bolus, ["log_CL", "log_V"], [0, 0, 0], [1, 1, 1], times=[1.0],
                      unit_exponents=[[0, 0, 0]])  # fmt: skip
    with pytest.raises(ValueError, match="unknown parameters"):
        FunctionModel(iv_bolus, ["log_CL", "log_V"], [0, 0, 0], [1, 1, 1], times=[1.0],
                      unit_exponents={"log_Q": [0, 0, 0]})  # fmt: skip
