"""Censored (BLQ) observations: the network's censored channel and the 30 %-BLQ study.

The study: 40 individuals of a one-compartment oral model, 12 samples each
over 24 h, an LLOQ at the 30 % quantile of all simulated concentrations. M3
(the exact likelihood with the probability of lying below the limit) recovers
the truth; M1 (BLQ rows dropped) does not.
"""

import warnings

import numpy as np
import pytest

from sknlme.data import IndividualRecords, make_individuals, to_padded
from sknlme.models import LinearCompartmental
from sknlme.population import NLMEPopulationEstimator
from sknlme.posterior import AmortizedPosterior, LaplacePosterior
from sknlme.posterior._encoding import Encoder
from sknlme.posterior._envelope import check_envelope

TINY = dict(hidden_units=(8,), flow_depth=2, summary_dim=8, batch_size=64, random_state=0)
TIMES = np.array([0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0])
DOSE = 100.0  # mg
TRUTH = {"log_CL": np.log(5.0), "log_V1": np.log(50.0), "log_ka": 0.0, "log_sigma": np.log(0.25)}
OMEGA = 0.3  # SD of every random effect


def _records(values, censored):
    return [
        IndividualRecords(TIMES, v, [0.0], [DOSE], censored=c)
        for v, c in zip(values, censored, strict=True)
    ]


@pytest.fixture(scope="module")
def study():
    """Simulated concentrations (n, T), their LLOQ and the censored mask."""
    model = LinearCompartmental(1, "oral")
    rng = np.random.default_rng(0)
    n = 40
    phi = np.tile([TRUTH[p] for p in model.param_names], (n, 1))
    phi[:, :3] += OMEGA * rng.standard_normal((n, 3))
    empty = make_individuals(_records(np.full((n, len(TIMES)), np.nan), np.zeros((n, 12), bool)))
    values = model.simulate_padded(phi, to_padded(empty, n_outputs=1), random_state=1)[..., 0]
    lloq = float(np.quantile(values, 0.3))  # 30 % of the observations are BLQ
    return model, values, lloq, values < lloq


def _fit(model, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # low-ESS notes of single individuals
        return NLMEPopulationEstimator(LaplacePosterior(model).fit(), random_state=0).fit(X)


def test_m3_recovers_the_truth_where_m1_is_biased(study):
    model, values, lloq, cens = study
    assert 0.29 < cens.mean() < 0.31
    m3 = make_individuals(_records(np.where(cens, lloq, values), cens))
    kept = zip(values, cens, strict=True)
    m1 = make_individuals([IndividualRecords(TIMES[~c], v[~c], [0.0], [DOSE]) for v, c in kept])
    fit3, fit1 = _fit(model, m3), _fit(model, m1)
    truth = np.array([TRUTH[p] for p in model.param_names])
    names = list(model.param_names)
    z3 = (fit3.fixed_effects_[names].to_numpy() - truth) / fit3.standard_errors_[names].to_numpy()
    # the M3 fit is the maximum likelihood of the data as recorded: its estimates
    # are normal about the truth with the Hessian's SEs, so |z| > 3 has
    # probability 0.27 % per parameter (1 % for the four). Measured: |z| <= 1.02.
    assert np.all(np.abs(z3) < 3), z3
    # M1 keeps, near the limit, only the values whose noise lifted them above
    # it: late concentrations read too high, so the elimination looks slower and
    # CL is underestimated. Measured: z = -5.4 with M1's own SE (-6.6 with M3's).
    se = fit1.standard_errors_["log_CL"]
    assert np.isfinite(se)
    z1 = (fit1.fixed_effects_["log_CL"] - TRUTH["log_CL"]) / se
    assert z1 < -3, z1


# ----------------------------------------------------------- the network side
@pytest.fixture(scope="module")
def trained(study):
    """Tiny networks trained with and without censoring at the study's limit."""
    model, _, lloq, _ = study
    kw = dict(n_simulations=300, epochs=1, **TINY)
    with_cens = AmortizedPosterior(model, censoring=lloq, **kw).fit()
    without = AmortizedPosterior(model, **kw).fit()
    return with_cens, without


def _study_table(study):
    _, values, lloq, cens = study
    return make_individuals(_records(np.where(cens, lloq, values), cens))


def test_encoder_has_a_censored_channel(study):
    model, values, lloq, cens = study
    padded = to_padded(_study_table(study), n_outputs=1)
    enc = Encoder.fit(padded, np.zeros((len(values), 0)), model.prior_mean, model.prior_std)
    assert enc.n_features == 1 + 3 + 3
    set_x, mask, _ = enc.encode(padded, np.zeros((len(values), 0)))
    obs = (mask > 0) & (set_x[..., -2] == 0)  # observation elements
    # censored elements: indicator 1 and the standardised limit as value
    flagged = obs & (set_x[..., 3] == 1)
    assert flagged.sum() == cens.sum()
    z_limit = (lloq - enc.state["value_mean"][0]) / enc.state["value_sd"][0]
    np.testing.assert_allclose(set_x[..., 1][flagged], z_limit, rtol=1e-5)
    # an encoder saved before the channel keeps its layout and reads censored
    # values as missing (never as observed values at the limit)
    old = {k: v for k, v in enc.to_dict().items() if k != "censored_channel"}
    old_enc = Encoder.from_dict(old)
    assert old_enc.n_features == 1 + 2 + 3
    no_cov = np.zeros((len(values), 0))
    as_missing = padded.replace(
        values=np.where(padded.censored, np.nan, padded.values),
        censored=np.zeros_like(padded.censored),
    )
    for got, want in zip(
        old_enc.encode(padded, no_cov), old_enc.encode(as_missing, no_cov), strict=True
    ):
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(padded.values, as_missing.values)


def test_training_censors_at_the_limit(trained, study):
    with_cens, without = trained
    _, _, lloq, _ = study
    lo, hi = with_cens.envelope_["censored"]
    assert lo == 0.0 and 0.0 < hi <= 1.0
    assert without.envelope_["censored"] == [0.0, 0.0]
    X = _study_table(study)
    assert not with_cens.check_envelope(X)["censored"].any()
    table = without.check_envelope(X)
    assert table["censored"].sum() == (study[3].any(1)).sum()
    assert "censored values (trained on none" in table["reason"][table["censored"]].iloc[0]
    study_padded = to_padded(X, n_outputs=1)
    old = check_envelope({**without.envelope_}, study_padded, None, list(X.index), False)
    assert "reads them as missing" in old["reason"][old["censored"]].iloc[0]
    legacy = {k: v for k, v in without.envelope_.items() if k != "censored"}  # older files
    assert check_envelope(legacy, study_padded, None, list(X.index))["censored"].equals(
        table["censored"]
    )
    draws = with_cens.sample(X, 5, random_state=0)
    assert draws.shape == (40, 5, 4) and np.isfinite(draws).all()
    # the censored training values sit exactly at the limit, as the data layer puts them
    from sknlme.posterior._training import censor

    padded = to_padded(X, n_outputs=1)
    raw = padded.replace(values=study[1][..., None], censored=np.zeros_like(padded.censored))
    again = censor(raw, np.array([lloq]))
    np.testing.assert_array_equal(again.censored, padded.censored)
    np.testing.assert_array_equal(again.values, padded.values)


def test_censoring_survives_save_and_load(trained, study, tmp_path):
    with_cens, _ = trained
    path = tmp_path / "post.zip"
    with_cens.save(path)
    again = AmortizedPosterior.load(path, model=with_cens.model)
    assert again.censoring == pytest.approx(with_cens.censoring)
    assert again.encoder_.censored_channel and again.envelope_["censored"][1] > 0
    X = _study_table(study)
    np.testing.assert_array_equal(again.sample(X, 3, random_state=1), with_cens.sample(X, 3, 1))


@pytest.mark.parametrize(
    "censoring, match",
    [([0.1, 0.2], r"one limit or one per output \(1\)"), (np.inf, "must be finite")],
)
def test_bad_censoring_is_refused(study, censoring, match):
    post = AmortizedPosterior(study[0], censoring=censoring, n_simulations=50, epochs=1, **TINY)
    with pytest.raises(ValueError, match=match):
        post.fit()
