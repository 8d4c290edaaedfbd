"""Per-dose extras (infusions, compartments, steady state, resets) and censoring in the data."""

import numpy as np
import pytest

from sknlme.data import (
    IndividualRecords,
    Padded,
    from_padded,
    make_individuals,
    pad_records,
    to_padded,
    validate_individuals,
)
from sknlme.models import OneCompartmentOral


def _rich():
    return IndividualRecords(
        [1.0, 2.0, 3.0],
        [2.0, 1.0, 0.1],
        [0.0, 12.0],
        [100.0, 50.0],
        dose_durations=[0.5, 0.0],
        dose_cmt=[2, 1],
        dose_ss=[1, 0],
        dose_ii=[12.0, 0.0],
        dose_reset=[False, True],
        censored=[False, False, True],
    )


def test_defaults_are_plain_bolus_doses():
    rec = IndividualRecords([1.0], [2.0], [0.0], [5.0])
    assert rec.dosing_features == frozenset()
    assert rec.dose_durations.tolist() == [0.0]
    assert rec.dose_cmt.dtype == np.int64 and rec.dose_reset.dtype == bool
    assert rec.censored.shape == (1, 1) and not rec.censored.any()


def test_extras_round_trip_through_padded_arrays():
    plain = IndividualRecords([0.5], [1.0], [0.0], [3.0])
    X = make_individuals([_rich(), plain], ids=["a", "b"])
    padded = to_padded(X)
    assert padded.dosing_features == {
        "infusion",
        "compartment",
        "steady_state",
        "reset",
        "censoring",
    }
    assert padded.dose_cmt.tolist() == [[2, 1], [0, 0]]
    back = from_padded(padded, ids=["a", "b"])
    assert back.loc["a", "records"] == _rich()
    assert back.loc["b", "records"] == plain
    # take / concatenate keep the extras row by row
    assert padded.take([0]).dosing_features == padded.dosing_features
    assert padded.take([1]).dosing_features == frozenset()
    both = Padded.concatenate([padded.take([1]), padded.take([0])])
    assert both.dose_ss.tolist() == [[0, 0], [1, 0]]
    assert both.censored[1, :, 0].tolist() == [False, False, True]


def test_records_equality_sees_the_extras():
    a = IndividualRecords([1.0], [2.0], [0.0], [5.0])
    b = IndividualRecords([1.0], [2.0], [0.0], [5.0], dose_durations=[1.0])
    assert a != b


def test_padded_checks_extra_shapes():
    p = pad_records([IndividualRecords([1.0], [2.0], [0.0], [5.0])])
    with pytest.raises(ValueError, match="dose_durations has shape"):
        p.replace(dose_durations=np.zeros((1, 2)))
    with pytest.raises(TypeError, match="censored must be a boolean"):
        p.replace(censored=np.zeros((1, 1, 1)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(dose_durations=[-1.0]), "infusion duration -1.0"),
        (dict(dose_ss=[3], dose_ii=[12.0]), "steady-state flag 3"),
        (dict(dose_ss=[1]), "interdose interval 0.0; SS needs II > 0"),
        (dict(dose_ss=[1], dose_ii=[2.0], dose_durations=[3.0]), "longer than its interval"),
        (dict(dose_cmt=[-2]), "dose compartment -2"),
    ],
)
def test_bad_extras_name_the_individual(kwargs, message):
    rec = IndividualRecords([1.0], [2.0], [0.0], [5.0], **kwargs)
    with pytest.raises(ValueError, match="individual 9: .*" + message.replace("(", r"\(")):
        validate_individuals(make_individuals([rec], ids=[9]))


def test_zero_amount_only_on_a_reset():
    reset = IndividualRecords([1.0], [2.0], [0.5], [0.0], dose_reset=[True])
    validate_individuals(make_individuals([reset]))
    with pytest.raises(ValueError, match="dose amount 0.0 is not a positive number"):
        validate_individuals(make_individuals([IndividualRecords([1.0], [2.0], [0.5], [0.0])]))


def test_censored_value_needs_its_limit():
    rec = IndividualRecords([1.0, 2.0], [2.0, np.nan], censored=[False, True])
    with pytest.raises(ValueError, match="censored observation without a limit"):
        validate_individuals(make_individuals([rec], ids=[3]))


def test_models_refuse_features_they_do_not_simulate():
    """A model without infusions must not read an infusion as a bolus (silently wrong)."""
    model = OneCompartmentOral()
    X, _ = model.simulate(3, random_state=0)
    recs = list(X["records"])
    r = recs[1]
    recs[1] = IndividualRecords(
        r.times, r.values, r.dose_times, r.dose_amounts, dose_ss=[1], dose_ii=[24.0]
    )
    X2 = make_individuals(recs, ids=X.index, covariates=X.drop(columns="records"))
    with pytest.raises(ValueError, match=r"does not simulate steady_state \(individual 2 uses it"):
        model.prepare(X2)
    padded = to_padded(X2)
    phi = model.sample_prior(3, random_state=0)
    with pytest.raises(ValueError, match="steady_state"):
        model.simulate_padded(phi, padded, random_state=0)
    with pytest.raises(ValueError, match="steady_state"):
        model.log_likelihood_padded(phi[:, None, :], padded)
    # X itself is untouched and still prepares
    assert model.prepare(X).padded.dosing_features == frozenset()


def test_nonmem_cmt_on_every_row_is_the_models_dose_compartment():
    """NONMEM files put CMT on every row; CMT 1 is the oral model's depot, CMT 2 is not."""
    from sknlme.data import from_long, to_long
    from sknlme.datasets import load_theophylline

    long = to_long(load_theophylline())
    long["CMT"] = 1
    model = OneCompartmentOral()
    assert model.prepare(from_long(long, covariates=["WT"])).n_individuals == 12
    long.loc[long["EVID"] == 1, "CMT"] = 2
    with pytest.raises(ValueError, match="does not simulate compartment"):
        model.prepare(from_long(long, covariates=["WT"]))
