"""Padded arrays and the prepared Study: shape checks, row operations, ID keys."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sknlme.data import (
    IndividualRecords,
    Padded,
    Study,
    as_study,
    fixed_design,
    id_keys,
    make_individuals,
    pad_records,
)


def _records(draw_sizes):
    rng = np.random.default_rng(0)
    out = []
    for n_obs, n_dose in draw_sizes:
        times = np.cumsum(rng.uniform(0.1, 1.0, n_obs))
        doses = np.sort(rng.uniform(0, 5, n_dose))
        out.append(IndividualRecords(times, rng.normal(size=n_obs), doses, np.ones(n_dose)))
    return out


sizes = st.lists(st.tuples(st.integers(1, 6), st.integers(0, 3)), min_size=1, max_size=8)


@given(sizes, st.data())
@settings(max_examples=40, deadline=None)
def test_take_matches_padding_the_chosen_records(sizes, data):
    records = _records(sizes)
    padded = pad_records(records)
    rows = data.draw(st.lists(st.integers(0, len(records) - 1), max_size=10))
    taken = padded.take(rows)
    assert taken.n_individuals == len(rows)
    for i, r in enumerate(rows):
        k, j = records[r].n_obs, records[r].n_doses
        assert np.array_equal(taken.times[i, :k], records[r].times)
        assert taken.obs_mask[i].sum() == k and taken.dose_mask[i].sum() == j
        assert np.array_equal(taken.dose_times[i, :j], records[r].dose_times)


@given(sizes, st.integers(1, 4))
@settings(max_examples=30, deadline=None)
def test_tile_repeats_each_row(sizes, reps):
    padded = pad_records(_records(sizes))
    tiled = padded.tile(reps)
    for a, b in zip(tiled.arrays(), padded.arrays(), strict=True):
        assert np.array_equal(a, np.repeat(b, reps, axis=0), equal_nan=True)


@given(sizes, sizes)
@settings(max_examples=30, deadline=None)
def test_concatenate_equals_padding_all_records(a, b):
    ra, rb = _records(a), _records(b)
    both = Padded.concatenate([pad_records(ra), pad_records(rb)])
    ref = pad_records(ra + rb)
    # padded times repeat the last real time in pad_records and are 0 after widening:
    # compare the real entries and the masks
    assert np.array_equal(both.obs_mask, ref.obs_mask)
    assert np.array_equal(both.dose_mask, ref.dose_mask)
    assert np.array_equal(both.times[both.obs_mask], ref.times[ref.obs_mask])
    assert np.array_equal(both.dose_amounts, ref.dose_amounts)


def test_replace_shares_untouched_arrays():
    d = fixed_design([1.0, 2.0], 3)
    new = d.replace(values=np.zeros((3, 2, 1)))
    assert new.times is d.times and np.all(new.values == 0) and np.isnan(d.values).all()


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("values", np.zeros((3, 4, 1)), "values has shape"),
        ("obs_mask", np.ones((2, 2), dtype=bool), "obs_mask has shape"),
        ("dose_amounts", np.zeros((3, 1)), "dose_amounts has shape"),
        ("obs_mask", np.ones((3, 2)), "boolean"),
        ("times", np.zeros(3), "needs times"),
    ],
)
def test_mismatched_arrays_are_refused(field, value, message):
    with pytest.raises((ValueError, TypeError), match=message):
        fixed_design([1.0, 2.0], 3).replace(**{field: value})


def test_study_take_and_keys_follow_ids():
    X = make_individuals(_records([(2, 1), (3, 0), (1, 1)]), ids=["a", "b", "c"])
    study = as_study(X)
    assert isinstance(study, Study) and len(study) == 3
    sub = study.take([2, 0])
    assert sub.ids == ["c", "a"]
    assert np.array_equal(sub.keys, study.keys[[2, 0]])
    assert np.array_equal(sub.padded.times, study.padded.take([2, 0]).times)


def test_id_keys_are_stable_and_distinct():
    ids = list(range(1000)) + [f"id{i}" for i in range(1000)]
    keys = id_keys(ids)
    assert len(set(keys.tolist())) == len(ids)
    # integer-like IDs of any type share a key; the key does not depend on the other IDs
    assert id_keys([np.int32(5)])[0] == id_keys([5.0])[0] == keys[5]
    assert id_keys(pd.Index(["id7"]))[0] == keys[1007]
