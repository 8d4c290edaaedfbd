"""Rectangular (padded) arrays of a whole population.

Simulators and neural networks work on rectangular arrays. :class:`Padded`
holds a population's records right-padded to the longest individual, with
explicit masks, never a bare sentinel value: padded time points carry
``obs_mask == False`` and padded doses carry ``dose_mask == False`` and amount 0.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from ._records import IndividualRecords, check_individuals, make_individuals


@dataclass
class Padded:
    """A population's records as padded arrays.

    Attributes
    ----------
    times : ndarray of shape (n, T)
        Observation times; padded entries repeat the last real time.
    values : ndarray of shape (n, T, n_outputs)
        Observed (or simulated) values; ``NaN`` where missing or padded.
    obs_mask : ndarray of shape (n, T), bool
        True where the time point is a real record of the individual.
    dose_times : ndarray of shape (n, D)
        Dose times; padded entries are 0.
    dose_amounts : ndarray of shape (n, D)
        Dose amounts; padded entries are 0 (they add nothing by superposition).
    dose_mask : ndarray of shape (n, D), bool
        True where the dose is a real event.

    Examples
    --------
    >>> from sknlme.data import IndividualRecords, make_individuals, to_padded
    >>> X = make_individuals([IndividualRecords([0.5, 1.0], [2.0, 1.0], [0.0], [4.0])])
    >>> p = to_padded(X)
    >>> p.n_individuals, p.n_outputs, p.dose_amounts.tolist()
    (1, 1, [[4.0]])
    """

    times: np.ndarray
    values: np.ndarray
    obs_mask: np.ndarray
    dose_times: np.ndarray
    dose_amounts: np.ndarray
    dose_mask: np.ndarray

    def __post_init__(self):
        # the compiled simulators index these arrays without bounds checks: a shape
        # mismatch must stop here, not read out of bounds
        names = [f.name for f in fields(self)]
        arrays = [np.asarray(getattr(self, name)) for name in names]
        times, values, obs_mask, dose_times, dose_amounts, dose_mask = arrays
        if times.ndim != 2 or values.ndim != 3 or dose_times.ndim != 2:
            raise ValueError(
                "Padded needs times (n, T), values (n, T, n_outputs) and dose arrays (n, D); got "
                f"times {times.shape}, values {values.shape}, dose_times {dose_times.shape}"
            )
        n, T = times.shape
        D = dose_times.shape[1]
        expected = {
            "values": (n, T, values.shape[2]),
            "obs_mask": (n, T),
            "dose_amounts": (n, D),
            "dose_mask": (n, D),
        }
        for name, arr in zip(names, arrays, strict=True):
            if name in expected and arr.shape != expected[name]:
                raise ValueError(
                    f"Padded.{name} has shape {arr.shape}, expected {expected[name]} "
                    f"(times {times.shape}, dose_times {dose_times.shape})"
                )
        for name in ("obs_mask", "dose_mask"):
            if np.asarray(getattr(self, name)).dtype != bool:
                raise TypeError(
                    f"Padded.{name} must be a boolean array, got {getattr(self, name).dtype}"
                )

    @property
    def n_individuals(self):
        return self.times.shape[0]

    @property
    def n_outputs(self):
        return self.values.shape[2]

    def value_mask(self):
        """True where a value was observed (a real record, not NaN), shape (n, T, n_outputs).

        Examples
        --------
        >>> from sknlme.data import IndividualRecords, make_individuals, to_padded
        >>> X = make_individuals([IndividualRecords([0, 1], [1.0, float("nan")])])
        >>> to_padded(X).value_mask()[0, :, 0].tolist()
        [True, False]
        """
        return self.obs_mask[..., None] & ~np.isnan(self.values)

    def arrays(self):
        """The six arrays in field order (``times`` ... ``dose_mask``).

        Examples
        --------
        >>> from sknlme.data import fixed_design
        >>> len(fixed_design([1.0, 2.0], 3).arrays())
        6
        """
        return tuple(getattr(self, f.name) for f in fields(self))

    def replace(self, **changes):
        """A copy with some arrays replaced (the others shared, not copied).

        Examples
        --------
        >>> import numpy as np
        >>> from sknlme.data import fixed_design
        >>> d = fixed_design([1.0, 2.0], 3)
        >>> d.replace(values=np.ones((3, 2, 1))).values.sum()
        np.float64(6.0)
        """
        return replace(self, **changes)

    def take(self, rows):
        """The individuals at positions ``rows`` (contiguous copies, in that order).

        Examples
        --------
        >>> from sknlme.data import fixed_design
        >>> fixed_design([1.0, 2.0], 3).take([2, 0]).n_individuals
        2
        """
        rows = np.asarray(rows, dtype=np.intp).reshape(-1)
        return Padded(*(np.ascontiguousarray(a[rows]) for a in self.arrays()))

    def tile(self, reps):
        """Each individual repeated ``reps`` times in a row (as ``np.repeat``).

        Examples
        --------
        >>> from sknlme.data import fixed_design
        >>> fixed_design([1.0, 2.0], 2).tile(3).n_individuals
        6
        """
        return self.take(np.repeat(np.arange(self.n_individuals), int(reps)))

    @classmethod
    def concatenate(cls, parts):
        """Stack populations padded to different widths into one (row order kept).

        Examples
        --------
        >>> from sknlme.data import fixed_design
        >>> both = Padded.concatenate([fixed_design([1.0], 2), fixed_design([1.0, 2.0], 1)])
        >>> both.times.shape, both.obs_mask.sum(axis=1).tolist()
        ((3, 2), [1, 1, 2])
        """
        parts = list(parts)
        T = max(p.times.shape[1] for p in parts)
        D = max(p.dose_times.shape[1] for p in parts)
        fills = (0.0, np.nan, False, 0.0, 0.0, False)
        widths = (T, T, T, D, D, D)

        def widen(a, width, fill):
            pad = [(0, 0), (0, width - a.shape[1])] + [(0, 0)] * (a.ndim - 2)
            return np.pad(a, pad, constant_values=fill)

        columns = zip(*(p.arrays() for p in parts), strict=True)
        return cls(
            *(
                np.concatenate([widen(a, w, f) for a in col])
                for col, w, f in zip(columns, widths, fills, strict=True)
            )
        )

    def to_records(self):
        """Split into one :class:`IndividualRecords` per individual.

        Records of right-padded arrays (real entries first, as made by
        :func:`pad_records` and the models' design samplers) are read-only
        views of one private copy of the arrays, so that a million
        individuals split in about a second.

        Examples
        --------
        >>> from sknlme.data import fixed_design
        >>> [r.n_obs for r in fixed_design([1.0, 2.0], 2).to_records()]
        [2, 2]
        """
        n_obs = self.obs_mask.sum(axis=1)
        n_dose = self.dose_mask.sum(axis=1)
        prefix = _is_prefix(self.obs_mask, n_obs) and _is_prefix(self.dose_mask, n_dose)
        if not prefix:
            return [
                IndividualRecords(
                    self.times[i, m],
                    self.values[i, m],
                    self.dose_times[i, d],
                    self.dose_amounts[i, d],
                )
                for i, (m, d) in enumerate(zip(self.obs_mask, self.dose_mask, strict=True))
            ]
        arrays = []
        for a in (self.times, self.values, self.dose_times, self.dose_amounts):
            a = np.array(a, dtype=float, copy=True)
            a.setflags(write=False)
            arrays.append(a)
        times, values, dose_times, dose_amounts = arrays
        make = IndividualRecords._trusted
        return [
            make(times[i, :k], values[i, :k], dose_times[i, :j], dose_amounts[i, :j])
            for i, (k, j) in enumerate(zip(n_obs.tolist(), n_dose.tolist(), strict=True))
        ]


def _is_prefix(mask, counts):
    """Whether every row of ``mask`` is True exactly on its first ``counts`` entries."""
    return bool(np.array_equal(mask, np.arange(mask.shape[1]) < counts[:, None]))


def _pad_rows(rows, width, fill, dtype):
    out = np.full((len(rows), width), fill, dtype=dtype)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def pad_records(records, *, n_outputs=None):
    """Stack a sequence of :class:`IndividualRecords` into :class:`Padded` arrays.

    Parameters
    ----------
    records : sequence of IndividualRecords
    n_outputs : int, default=None
        Required number of outputs; inferred from the records when None.

    Returns
    -------
    Padded

    Examples
    --------
    >>> from sknlme.data import IndividualRecords, pad_records
    >>> p = pad_records([IndividualRecords([0, 1, 2], [1, 2, 3]), IndividualRecords([0], [3])])
    >>> p.times.shape, p.obs_mask.sum(axis=1).tolist()
    ((2, 3), [3, 1])
    """
    records = list(records)
    if not records:
        raise ValueError("no individuals")
    outputs = {rec.n_outputs for rec in records}
    if n_outputs is None:
        if len(outputs) != 1:
            raise ValueError(f"individuals have different numbers of outputs: {sorted(outputs)}")
        n_outputs = outputs.pop()
    n = len(records)
    n_time = max(rec.n_obs for rec in records)
    n_dose = max(rec.n_doses for rec in records)
    times = np.zeros((n, n_time))
    values = np.full((n, n_time, n_outputs), np.nan)
    obs_mask = np.zeros((n, n_time), dtype=bool)
    for i, rec in enumerate(records):
        if rec.n_outputs != n_outputs:
            raise ValueError(f"individual {i} has {rec.n_outputs} outputs, expected {n_outputs}")
        k = rec.n_obs
        times[i, :k] = rec.times
        if k:
            times[i, k:] = rec.times[-1]
        values[i, :k] = rec.values
        obs_mask[i, :k] = True
    dose_times = _pad_rows([r.dose_times for r in records], n_dose, 0.0, float)
    dose_amounts = _pad_rows([r.dose_amounts for r in records], n_dose, 0.0, float)
    dose_mask = _pad_rows([np.ones(r.n_doses, bool) for r in records], n_dose, False, bool)
    return Padded(times, values, obs_mask, dose_times, dose_amounts, dose_mask)


def to_padded(X, *, n_outputs=None):
    """Padded arrays of an individuals table (row order kept).

    Examples
    --------
    >>> from sknlme.data import IndividualRecords, make_individuals, to_padded
    >>> X = make_individuals([IndividualRecords([0, 1], [1, 2]), IndividualRecords([0], [3])])
    >>> p = to_padded(X)
    >>> p.times.shape, p.obs_mask.tolist()
    ((2, 2), [[True, True], [True, False]])
    """
    return pad_records(check_individuals(X), n_outputs=n_outputs)


def from_padded(padded, ids=None, covariates=None):
    """Individuals table from :class:`Padded` arrays (inverse of :func:`to_padded`).

    Examples
    --------
    >>> from sknlme.data import fixed_design, from_padded
    >>> X = from_padded(fixed_design([1.0, 2.0], 3), ids=["a", "b", "c"])
    >>> X.index.tolist(), list(X.columns)
    (['a', 'b', 'c'], ['records'])
    """
    return make_individuals(padded.to_records(), ids=ids, covariates=covariates)


def fixed_design(times, n, n_outputs=1):
    """Design of ``n`` individuals all observed at the same ``times``, without doses.

    Examples
    --------
    >>> from sknlme.data import fixed_design
    >>> d = fixed_design([0.5, 1.0, 2.0], 4)
    >>> d.times.shape, d.values.shape, int(d.obs_mask.sum())
    ((4, 3), (4, 3, 1), 12)
    """
    times = np.asarray(times, dtype=float).reshape(-1)
    T = times.size
    return Padded(
        times=np.broadcast_to(times, (n, T)).copy(),
        values=np.full((n, T, n_outputs), np.nan),
        obs_mask=np.ones((n, T), dtype=bool),
        dose_times=np.zeros((n, 0)),
        dose_amounts=np.zeros((n, 0)),
        dose_mask=np.zeros((n, 0), dtype=bool),
    )
