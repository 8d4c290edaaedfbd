"""Rectangular (padded) arrays of a whole population.

Simulators and neural networks work on rectangular arrays. :class:`Padded`
holds a population's records right-padded to the longest individual, with
explicit masks, never a bare sentinel value: padded time points carry
``obs_mask == False`` and padded doses carry ``dose_mask == False`` and amount 0.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from ._records import DOSE_EXTRAS, IndividualRecords, dosing_features_of


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
    dose_durations, dose_cmt, dose_ss, dose_ii, dose_reset : ndarray of shape (n, D)
        Infusion durations (0: bolus), dose compartments (0: the model's
        default), steady-state flags, interdose intervals and reset flags (see
        :class:`IndividualRecords`); all zero (False) by default and on padding.
    censored : ndarray of shape (n, T, n_outputs), bool
        True where the value is a quantification limit the observation lies
        below; False by default and on padding.

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
    dose_durations: np.ndarray | None = None
    dose_cmt: np.ndarray | None = None
    dose_ss: np.ndarray | None = None
    dose_ii: np.ndarray | None = None
    dose_reset: np.ndarray | None = None
    censored: np.ndarray | None = None

    def __post_init__(self):
        # the compiled simulators index these arrays without bounds checks: a shape
        # mismatch must stop here, not read out of bounds
        dose_shape = np.shape(self.dose_times)
        for name, dtype in DOSE_EXTRAS.items():
            if getattr(self, name) is None:
                setattr(self, name, np.zeros(dose_shape, dtype))
        if self.censored is None:
            self.censored = np.zeros(np.shape(self.values), bool)
        names = [f.name for f in fields(self)]
        arrays = [np.asarray(getattr(self, name)) for name in names]
        times, values, obs_mask, dose_times = arrays[:4]
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
            **{name: (n, D) for name in DOSE_EXTRAS},
            "censored": values.shape,
        }
        for name, arr in zip(names, arrays, strict=True):
            if name in expected and arr.shape != expected[name]:
                raise ValueError(
                    f"Padded.{name} has shape {arr.shape}, expected {expected[name]} "
                    f"(times {times.shape}, dose_times {dose_times.shape})"
                )
        for name in ("obs_mask", "dose_mask", "dose_reset", "censored"):
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

    @property
    def dosing_features(self):
        """The dosing features the real events use (see :class:`IndividualRecords`).

        Examples
        --------
        >>> from sknlme.data import fixed_design
        >>> sorted(fixed_design([1.0, 2.0], 3).dosing_features)
        []
        """
        return dosing_features_of(
            self.dose_durations[self.dose_mask],
            self.dose_cmt[self.dose_mask],
            self.dose_ss[self.dose_mask],
            self.dose_reset[self.dose_mask],
            self.censored[self.obs_mask],
        )

    def arrays(self):
        """All arrays in field order (``times`` ... ``dose_mask``, then the dose extras
        and ``censored``).

        Examples
        --------
        >>> from sknlme.data import fixed_design
        >>> len(fixed_design([1.0, 2.0], 3).arrays())
        12
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
        if "censored" not in changes and not self.censored.any():
            changes["censored"] = None  # new observation arrays: uncensored of their shape
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
        fills = (0.0, np.nan, False, 0.0, 0.0, False, 0.0, 0, 0, 0.0, False, False)
        widths = (T, T, T, D, D, D, D, D, D, D, D, T)

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
        plain = not self.dosing_features
        if not prefix:
            return [
                IndividualRecords(
                    self.times[i, m],
                    self.values[i, m],
                    self.dose_times[i, d],
                    self.dose_amounts[i, d],
                    **{name: getattr(self, name)[i, d] for name in DOSE_EXTRAS},
                    censored=self.censored[i, m],
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
        if plain:  # the common case: no per-dose extras to slice (a million in about a second)
            return [
                make(times[i, :k], values[i, :k], dose_times[i, :j], dose_amounts[i, :j])
                for i, (k, j) in enumerate(zip(n_obs.tolist(), n_dose.tolist(), strict=True))
            ]
        extras = {}
        for name, dtype in DOSE_EXTRAS.items():
            extras[name] = np.array(getattr(self, name), dtype=dtype, copy=True)
            extras[name].setflags(write=False)
        censored = np.array(self.censored, dtype=bool, copy=True)
        censored.setflags(write=False)
        return [
            make(
                times[i, :k],
                values[i, :k],
                dose_times[i, :j],
                dose_amounts[i, :j],
                {name: a[i, :j] for name, a in extras.items()},
                censored[i, :k],
            )
            for i, (k, j) in enumerate(zip(n_obs.tolist(), n_dose.tolist(), strict=True))
        ]


def _is_prefix(mask, counts):
    """Whether every row of ``mask`` is True exactly on its first ``counts`` entries."""
    return bool(np.array_equal(mask, np.arange(mask.shape[1]) < counts[:, None]))


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
